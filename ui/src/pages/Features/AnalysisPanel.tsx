import { useState } from "react";
import { errorText } from "../../api/errors";
import { useStartAnalysis } from "../../api/mutations";
import { useAnalysisStatus } from "../../api/queries";
import type { AnalysisStatus } from "../../api/types";
import { useServerMessages } from "../../ws/context";
import { ErrorMessage, ProgressBar } from "../../components/Status";

interface Live {
  phase: string;
  done: number;
  total: number;
}

/**
 * The feature analysis of one SAE: its status (GET .../analysis), a button to (re)run it (POST .../analysis),
 * and live progress from analysis_progress messages. The cached status follows the socket (socketSync.ts:
 * analysis_progress marks it running, analysis_done reloads it and, when done, the SAE's features).
 */
export function AnalysisPanel({ saeId }: { saeId: string }) {
  const status = useAnalysisStatus(saeId);
  const start = useStartAnalysis(saeId);
  const [live, setLive] = useState<Live | null>(null);
  const [nTokens, setNTokens] = useState("");

  useServerMessages("analysis_progress", (m) => {
    if (m.sae_id === saeId) setLive({ phase: m.phase, done: m.done, total: m.total });
  });
  useServerMessages("analysis_done", (m) => {
    if (m.sae_id === saeId) setLive(null);
  });

  const s: AnalysisStatus | undefined = status.data;
  const running = s?.status === "running" || live != null;
  const prog = live ?? (s?.progress ? { phase: s.progress.phase, done: s.progress.done, total: s.progress.total } : null);
  const run = () => {
    const n = nTokens.trim() ? Number(nTokens) : null;
    start.mutate(n ? { n_tokens: n } : null);
  };

  return (
    <div className="card analysis" data-testid="analysis-panel" data-status={s?.status}>
      <div className="row">
        <strong>Feature analysis:</strong>{" "}
        <span className={`badge badge-${s?.status ?? "none"}`} data-testid="analysis-status">{s?.status ?? "…"}</span>
        {s?.status === "done" && s.n_tokens != null && <span className="muted small">{s.n_tokens.toLocaleString()} tokens</span>}
        {!running && (
          <>
            <label htmlFor="an-tokens" className="small">Tokens</label>
            <input id="an-tokens" type="number" min={1} placeholder="server default" value={nTokens}
              onChange={(e) => setNTokens(e.target.value)} style={{ width: "9em" }} />
            <button type="button" onClick={run} disabled={start.isPending}>
              {s?.status === "done" ? "Re-run analysis" : "Run analysis"}
            </button>
          </>
        )}
      </div>
      {running && (
        <>
          <ProgressBar value={prog && prog.total > 0 ? prog.done / prog.total : null} label="Feature analysis progress" />
          <p className="muted small">{prog ? `${prog.phase} ${prog.done.toLocaleString()} / ${prog.total.toLocaleString()}` : "starting…"}</p>
        </>
      )}
      {s?.error && s.status !== "running" && <ErrorMessage error={`Analysis ${s.status}: ${s.error}`} />}
      <ErrorMessage error={errorText(status.error ?? start.error)} onRetry={status.error ? () => void status.refetch() : undefined} />
    </div>
  );
}
