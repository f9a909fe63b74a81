import { useRef } from "react";
import { api, downloadBlob } from "../../api/endpoints";
import { useAction } from "../../api/useAsync";
import type { SaeInfo } from "../../api/types";
import { ErrorMessage } from "../../components/Status";

/** Export the chosen SAE as a SAELens folder zip (GET /api/saes/{id}/export); import one (POST /api/saes/import). */
export function SaeTransfer({ saeId, onImported }: { saeId: string | undefined; onImported: (sae: SaeInfo) => void }) {
  const exp = useAction();
  const imp = useAction();
  const file = useRef<HTMLInputElement>(null);
  return (
    <div className="row sae-transfer">
      <button type="button" disabled={!saeId || exp.busy} onClick={() => exp.run(async () => {
        const { blob, filename } = await api.exportSae(saeId!);
        downloadBlob(blob, filename);
      })}>{exp.busy ? "Exporting…" : "Export SAE (SAELens .zip)"}</button>
      <label htmlFor="sae-import">Import SAE (.zip)</label>
      <input id="sae-import" ref={file} type="file" accept=".zip" />
      <button type="button" disabled={imp.busy} onClick={async () => {
        const f = file.current?.files?.[0];
        if (!f) return;
        const sae = await imp.run(() => api.importSae(f));
        if (sae) {
          if (file.current) file.current.value = "";
          onImported(sae);
        }
      }}>{imp.busy ? "Importing…" : "Import"}</button>
      <ErrorMessage error={exp.error ?? imp.error} />
    </div>
  );
}
