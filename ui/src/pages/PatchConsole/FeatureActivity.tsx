import { ApiError, errorText } from "../../api/errors";
import { useTextActivations } from "../../api/queries";
import type { Patch } from "../../api/types";
import { TokenHighlight } from "../../charts/TokenHighlight/TokenHighlight";
import { fmt } from "../../charts/useWidth";

const SHOWN = 6;

const WHY: Partial<Record<Patch["mode"], string>> = {
  ablate: "ablating it changes nothing here",
  scale: "scaling it changes nothing here",
  clamp: "clamping holds it at the strength anyway",
  steer: "steering adds its direction anyway",
};

/**
 * Each feature of a patch on the current prompt (original model): a strip of its activation per token, or
 * "feature inactive on this prompt" — why an ablation can leave the logits where they were.
 */
export function FeatureActivity({ patch, text }: { patch: Patch; text: string }) {
  const features = patch.mode === "adapter" ? [] : patch.features;
  const q = useTextActivations(patch.sae_id ?? null, text, features);
  if (features.length === 0 || !text.trim()) return null;
  // a prompt the server refuses (422: too long, empty) is reported once, above the logits
  if (q.error) {
    if (q.error instanceof ApiError && q.error.status === 422) return null;
    return <p className="muted small">Activations on the prompt unavailable: {errorText(q.error)}</p>;
  }
  if (!q.data) return <p className="muted small">Reading the features' activations on the prompt…</p>;
  const res = q.data;
  const rows = features.map((f) => {
    const fa = res.features.find((x) => x.index === f);
    return { f, max: fa?.max ?? 0, acts: fa?.activations ?? [] };
  });
  const inactive = rows.filter((r) => !(r.max > 0));
  return (
    <div className="feature-activity" data-testid="feature-activity">
      {inactive.length === rows.length ? (
        <p className="notice" data-testid="inactive-notice">
          {rows.length === 1 ? `Feature ${rows[0].f} is` : `None of these ${rows.length} features is`} inactive on this
          prompt{rows.length === 1 ? "" : " (all zero)"}: {WHY[patch.mode] ?? "the patch may change little"}.
        </p>
      ) : inactive.length > 0 ? (
        <p className="muted small" data-testid="inactive-notice">
          Inactive on this prompt: {inactive.map((r) => r.f).join(", ")}.
        </p>
      ) : null}
      {rows.filter((r) => r.max > 0).slice(0, SHOWN).map((r) => (
        <div key={r.f} className="act-row">
          <span className="small muted">#{r.f} · max {fmt(r.max)}</span>
          <TokenHighlight tokens={res.tokens} activations={r.acts} label={`Feature ${r.f} on the prompt`} />
        </div>
      ))}
      {rows.length - inactive.length > SHOWN && (
        <p className="muted small">…and {rows.length - inactive.length - SHOWN} more active features.</p>
      )}
    </div>
  );
}
