import { api } from "../api/endpoints";
import { useAsync } from "../api/useAsync";
import type { SaeInfo } from "../api/types";
import { ErrorMessage } from "./Status";

/** Select one of the server's SAEs. */
export function SaePicker({
  value,
  onChange,
  id = "sae-picker",
  reloadKey = 0,
}: {
  value: string | null | undefined;
  onChange: (saeId: string, sae: SaeInfo | undefined) => void;
  id?: string;
  /** change it to reload the list (e.g. after an import) */
  reloadKey?: number;
}) {
  const saes = useAsync(() => api.listSaes(), [reloadKey]);
  const list = saes.data ?? [];
  return (
    <div className="field">
      <label htmlFor={id}>SAE</label>
      <select
        id={id}
        value={value ?? ""}
        disabled={saes.loading && !saes.data}
        onChange={(e) => onChange(e.target.value, list.find((s) => s.id === e.target.value))}
      >
        <option value="" disabled>
          {saes.loading && !saes.data ? "Loading SAEs…" : list.length ? "Choose an SAE" : "No SAEs yet — train one"}
        </option>
        {list.map((s) => (
          <option key={s.id} value={s.id}>
            {s.hook_name} · {s.architecture} · {s.d_sae} ({s.id})
          </option>
        ))}
      </select>
      <ErrorMessage error={saes.error} onRetry={saes.reload} />
    </div>
  );
}
