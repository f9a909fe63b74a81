import { useState } from "react";
import { errorText } from "../../api/errors";
import { useExplainAction, useStartExplain } from "../../api/mutations";
import { useExplainJob } from "../../api/queries";
import type { ExplainJob, ExplainRequest } from "../../api/types";
import { ErrorMessage, ProgressBar } from "../../components/Status";
import { useServerMessages } from "../../ws/context";
import { type ExplainerChoice, ExplainerPicker, explainerBody, explainerIncomplete } from "./ExplainerPicker";

type Which = "all" | "shown" | "selected";

const RESUMABLE: ExplainJob["status"][] = ["cancelled", "interrupted", "failed"];

/** "3 / 10 features · 1 error" */
export function progressText(job: Pick<ExplainJob, "done" | "total" | "errors">): string {
  const errs = job.errors ? ` · ${job.errors.toLocaleString()} error${job.errors === 1 ? "" : "s"}` : "";
  return `${job.done.toLocaleString()} / ${job.total.toLocaleString()} features${errs}`;
}

/**
 * Explain (and score) an SAE's features in a background job: which features (all analysed, the ones the list
 * shows, or the selected one), which explainer, then progress from `job` events (socketSync.ts keeps the cached
 * job current), cancel while it runs, resume a job that stopped (features it explained are skipped). Features this
 * explainer already explained are skipped unless "Re-explain explained ones" (`force`) is ticked.
 */
export function ExplainPanel({ saeId, shown, selected }: { saeId: string; shown: number[]; selected: number | null }) {
  const job = useExplainJob(saeId);
  const start = useStartExplain(saeId);
  const cancel = useExplainAction(saeId, "cancel");
  const resume = useExplainAction(saeId, "resume");
  const [which, setWhich] = useState<Which>("shown");
  const [choice, setChoice] = useState<ExplainerChoice>({ explainer: "loaded", model: "" });
  const [score, setScore] = useState(true);
  const [force, setForce] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const [limit, setLimit] = useState("");

  const j = job.data ?? null;
  useServerMessages("job", (m) => {
    if (m.kind === "explain" && j && m.job_id === j.id) setNote(m.detail ?? null);
  });

  const running = j?.status === "running" || j?.status === "queued";
  // "shown": the list's rows in its order (its sort and filters), the first `limit` of them when one is given
  const firstN = limit.trim() && Number(limit) > 0 ? shown.slice(0, Math.floor(Number(limit))) : shown;
  const features = which === "all" ? null : which === "selected" ? (selected == null ? [] : [selected]) : firstN;
  const run = () => {
    const body: ExplainRequest = { features, ...explainerBody(choice), score, ...(force ? { force: true } : {}) };
    setNote(null);
    start.mutate(body);
  };

  return (
    <div className="card explain" data-testid="explain-panel" data-status={j?.status ?? "none"}>
      <div className="row">
        <strong>Explanations:</strong>{" "}
        <span className={`badge badge-${j?.status ?? "none"}`} data-testid="explain-status">{j?.status ?? "none yet"}</span>
        {!running && (
          <>
            <label htmlFor="ex-which" className="small">Explain</label>
            <select id="ex-which" style={{ width: "auto" }} value={which} onChange={(e) => setWhich(e.target.value as Which)}>
              <option value="shown">the {shown.length.toLocaleString()} shown</option>
              <option value="selected" disabled={selected == null}>
                {selected == null ? "the selected feature" : `the selected feature (#${selected})`}
              </option>
              <option value="all">all analysed features</option>
            </select>
            {which === "shown" && (
              <>
                <label htmlFor="ex-limit" className="small">at most</label>
                <input id="ex-limit" type="number" min={1} placeholder="all" value={limit} style={{ width: "6em" }}
                  onChange={(e) => setLimit(e.target.value)} title="Only the first N rows of the list, in its sort order" />
              </>
            )}
            <ExplainerPicker id="ex-explainer" value={choice} onChange={setChoice} />
            <label className="check" title="Score each explanation by detection and fuzzing (balanced accuracy, 0.5 = chance)">
              <input type="checkbox" checked={score} onChange={(e) => setScore(e.target.checked)} /> Score
            </label>
            <label className="check" title="Explain and score again the features this explainer already explained; the new explanation (or error) replaces the stored one, your own labels stay">
              <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> Re-explain explained ones
            </label>
            <button type="button" onClick={run}
              disabled={start.isPending || explainerIncomplete(choice) || (features != null && features.length === 0)}>
              Explain features
            </button>
            {j && RESUMABLE.includes(j.status) && (
              <button type="button" onClick={() => resume.mutate()} disabled={resume.isPending}>Resume</button>
            )}
          </>
        )}
        {running && (
          <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending}>Cancel</button>
        )}
      </div>
      {j && (running || j.total > 0) && (
        <>
          {running && <ProgressBar value={j.total > 0 ? j.done / j.total : null} label="Explanation progress" />}
          <p className="muted small" data-testid="explain-progress">
            {progressText(j)}
            {running && note ? ` · ${note}` : ""}
          </p>
        </>
      )}
      {j?.error && !running && <ErrorMessage error={`Explanation job ${j.status}: ${j.error}`} />}
      <ErrorMessage error={errorText(job.error ?? start.error ?? cancel.error ?? resume.error)}
        onRetry={job.error ? () => void job.refetch() : undefined} />
    </div>
  );
}
