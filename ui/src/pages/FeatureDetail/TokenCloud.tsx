import { useMemo } from "react";
import * as d3 from "d3";
import type { Context } from "../../api/types";
import { fmt } from "../../charts/useWidth";
import { mergeTokens, showToken } from "../../tokens/display";

/** Sum of this feature's activation per token over the given contexts (only where it fires); byte pieces of one
 * character count as that character (tokens/display.ts). */
export function tokenWeights(contexts: Context[]): { token: string; weight: number }[] {
  const m = new Map<string, number>();
  for (const c of contexts) for (const p of mergeTokens(c.tokens)) {
    const a = Math.max(0, ...c.activations.slice(p.start, p.end));
    if (a > 0) m.set(p.text, (m.get(p.text) ?? 0) + a);
  }
  return [...m.entries()].map(([token, weight]) => ({ token, weight })).sort((a, b) => b.weight - a.weight);
}

/** Tokens the feature fires on, sized by summed activation; hover highlights them in the contexts. */
export function TokenCloud({ contexts, onHover, limit = 40 }: { contexts: Context[]; onHover: (t: string | null) => void; limit?: number }) {
  const words = useMemo(() => tokenWeights(contexts).slice(0, limit), [contexts, limit]);
  const size = useMemo(() => {
    const max = d3.max(words, (w) => w.weight) ?? 1;
    return d3.scaleSqrt().domain([0, max]).range([11, 28]);
  }, [words]);
  if (words.length === 0) return <p className="muted">No firing tokens in these contexts.</p>;
  return (
    <ul className="token-cloud" aria-label="Tokens this feature fires on">
      {words.map((w) => (
        <li key={w.token}>
          <button
            type="button"
            className="cloud-word"
            style={{ fontSize: size(w.weight) }}
            title={`${showToken(w.token)}: total activation ${fmt(w.weight)}`}
            onMouseEnter={() => onHover(w.token)}
            onMouseLeave={() => onHover(null)}
            onFocus={() => onHover(w.token)}
            onBlur={() => onHover(null)}
          >
            {showToken(w.token)}
          </button>
        </li>
      ))}
    </ul>
  );
}
