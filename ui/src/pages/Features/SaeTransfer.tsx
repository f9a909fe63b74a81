import { useRef } from "react";
import { errorText } from "../../api/errors";
import { useExportSae, useImportSae } from "../../api/mutations";
import type { SaeInfo } from "../../api/types";
import { ErrorMessage } from "../../components/Status";

/**
 * Export the chosen SAE as a SAELens folder zip (GET /api/saes/{id}/export); import one (POST /api/saes/import,
 * after which the cached SAE list reloads).
 */
export function SaeTransfer({ saeId, onImported }: { saeId: string | undefined; onImported: (sae: SaeInfo) => void }) {
  const exp = useExportSae();
  const imp = useImportSae();
  const file = useRef<HTMLInputElement>(null);
  return (
    <div className="row sae-transfer">
      <button type="button" disabled={!saeId || exp.isPending} onClick={() => exp.mutate(saeId!)}>
        {exp.isPending ? "Exporting…" : "Export SAE (SAELens .zip)"}
      </button>
      <label htmlFor="sae-import">Import SAE (.zip)</label>
      <input id="sae-import" ref={file} type="file" accept=".zip" />
      <button type="button" disabled={imp.isPending} onClick={() => {
        const f = file.current?.files?.[0];
        if (!f) return;
        imp.mutate(f, {
          onSuccess: (sae) => {
            if (file.current) file.current.value = "";
            onImported(sae);
          },
        });
      }}>{imp.isPending ? "Importing…" : "Import"}</button>
      <ErrorMessage error={errorText(exp.error ?? imp.error)} />
    </div>
  );
}
