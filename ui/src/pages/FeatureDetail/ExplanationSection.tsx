import { useState } from "react";
import { errorText } from "../../api/errors";
import { useStartExplain } from "../../api/mutations";
import { useExplainJob } from "../../api/queries";
import type { FeatureDetail } from "../../api/types";
import { ErrorMessage } from "../../components/Status";
import { type ExplainerChoice, ExplainerPicker, explainerBody, explainerIncomplete } from "../Features/ExplainerPicker";
import { Score } from "../Features/scores";

/**
 * The feature's latest explanation (text, explainer, scorer, detection/fuzzing scores, or the error with its
 * kind) and a button that explains this feature alone. The server keeps one explanation per feature; re-explaining
 * sends `force`, so even the same explainer explains and scores it again and the result replaces the stored one
 * (the user's label stays); the detail reloads when the job reports this feature (socketSync.ts).
 */
export function ExplanationSection({ saeId, f }: { saeId: string; f: FeatureDetail }) {
  const e = f.explanation_detail ?? null;
  const job = useExplainJob(saeId);
  const start = useStartExplain(saeId);
  const [choice, setChoice] = useState<ExplainerChoice>({ explainer: "loaded", model: "" });
  const j = job.data ?? null;
  const busy = j?.status === "running" || j?.status === "queued";
  const mine = busy && Array.isArray(j?.config?.features) && (j.config.features as unknown[]).includes(f.index);

  return (
    <section className="card explanation" aria-labelledby="expl-h" data-testid="explanation">
      <h2 id="expl-h">Explanation</h2>
      {!e && <p className="muted">Not explained yet.</p>}
      {e?.text && <p className="explanation-text" data-testid="explanation-text">{e.text}</p>}
      {e?.error && (
        <p role="alert" className="error" data-testid="explanation-error">
          Explaining failed ({e.error_kind ?? "error"}): {e.error}
        </p>
      )}
      {e && (
        <p className="stats small" data-testid="explanation-meta">
          <span>explainer {e.explainer_name}</span>
          <span>{e.scorer_name ? `scored by ${e.scorer_name}` : "not scored"}</span>
          <span>detection <Score kind="detection" value={e.detection} /></span>
          <span>fuzzing <Score kind="fuzzing" value={e.fuzzing} /></span>
          <span className="muted">balanced accuracy, 0.5 = chance</span>
          <span className="muted">prompts {e.prompt_version} · {new Date(e.created_at * 1000).toLocaleString()}</span>
        </p>
      )}
      <div className="row">
        {busy ? (
          <span className="muted small" data-testid="explain-busy">
            {mine ? "Explaining this feature…" : "An explanation job of this SAE is running"} ({j!.done} / {j!.total})
          </span>
        ) : (
          <>
            <ExplainerPicker id="fx-explainer" value={choice} onChange={setChoice} />
            <button type="button" disabled={start.isPending || explainerIncomplete(choice)}
              onClick={() => start.mutate({ features: [f.index], ...explainerBody(choice), ...(e ? { force: true } : {}) })}>
              {e ? "Re-explain this feature" : "Explain this feature"}
            </button>
            {e && <span className="muted small">replaces the stored explanation and scores (your label stays)</span>}
          </>
        )}
      </div>
      <ErrorMessage error={errorText(start.error)} />
    </section>
  );
}
