/**
 * How explanation scores read: detection and fuzzing are balanced accuracies of a judge that, given the
 * explanation, tells the feature's activating examples from non-activating ones (detection) or its marked
 * tokens from randomly marked ones (fuzzing). 0.5 is chance, 1 a perfect explanation.
 */
export const SCORE_HELP = {
  detection: "Detection: balanced accuracy of telling this feature's activating examples from others using the explanation (0.5 = chance, 1 = perfect)",
  fuzzing: "Fuzzing: balanced accuracy of telling the tokens the feature fires on from randomly marked ones using the explanation (0.5 = chance, 1 = perfect)",
} as const;

/** A score in 0..1 with two decimals; "—" when not scored. */
export function fmtScore(v: number | null | undefined): string {
  return v == null || Number.isNaN(v) ? "—" : v.toFixed(2);
}

/**
 * Marker of a feature whose last explanation failed (the explainer refused, timed out, answered malformed...):
 * the kind as text, the stored message as the tooltip (and accessible name). Nothing when there is no error.
 */
export function ExplanationErrorMark({ error, kind }: { error: string | null | undefined; kind: string | null | undefined }) {
  if (!error) return null;
  const what = kind ? kind.replace(/_/g, " ") : "error";
  return (
    <span className="badge badge-failed small" title={error} aria-label={`Explaining failed (${what}): ${error}`}
      data-testid="explanation-error-mark">
      ⚠ {what}
    </span>
  );
}

/** One score with its meaning as the tooltip; below chance (< 0.5) and near perfect (≥ 0.8) get a class. */
export function Score({ kind, value }: { kind: keyof typeof SCORE_HELP; value: number | null | undefined }) {
  const cls = value == null ? "muted" : value >= 0.8 ? "score-good" : value <= 0.5 ? "score-chance" : undefined;
  return (
    <span className={cls} title={SCORE_HELP[kind]} data-testid={`score-${kind}`}>
      {fmtScore(value)}
    </span>
  );
}
