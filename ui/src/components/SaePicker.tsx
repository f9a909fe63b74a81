import { errorText } from "../api/errors";
import { useSaes } from "../api/queries";
import type { SaeInfo } from "../api/types";
import { ErrorMessage } from "./Status";

/** Select one of the server's SAEs. */
export function SaePicker({
  value,
  onChange,
  id = "sae-picker",
}: {
  value: string | null | undefined;
  onChange: (saeId: string, sae: SaeInfo | undefined) => void;
  id?: string;
}) {
  // the list follows the cache: an import or a finished training run invalidates it
  const saes = useSaes();
  const list = saes.data ?? [];
  return (
    <div className="field">
      <label htmlFor={id}>SAE</label>
      <select
        id={id}
        value={value ?? ""}
        disabled={saes.isPending}
        onChange={(e) => onChange(e.target.value, list.find((s) => s.id === e.target.value))}
      >
        <option value="" disabled>
          {saes.isPending ? "Loading SAEs…" : list.length ? "Choose an SAE" : "No SAEs yet — train one"}
        </option>
        {list.map((s) => (
          <option key={s.id} value={s.id}>
            {s.hook_name} · {s.architecture} · {s.d_sae} ({s.id})
          </option>
        ))}
      </select>
      <ErrorMessage error={errorText(saes.error)} onRetry={() => void saes.refetch()} />
    </div>
  );
}
