import { useMemo, useState } from "react";
import * as d3 from "d3";
import { fmt } from "../useWidth";
import { contextToken, mergeTokens, showToken } from "../../tokens/display";

export interface TokenHighlightProps {
  tokens: string[];
  activations: number[];
  /** colour scale maximum; defaults to this context's max */
  max?: number;
  /** pieces to outline, by their merged text (e.g. hovered in the token cloud) */
  highlight?: ReadonlySet<string>;
  label?: string;
}

/**
 * A context with each token shaded by activation; hover (or focus) shows the exact value. Byte pieces of one
 * character are shown merged (tokens/display.ts): the merged piece takes the largest activation of its tokens.
 */
export function TokenHighlight({ tokens, activations, max, highlight, label }: TokenHighlightProps) {
  const [hover, setHover] = useState<number | null>(null);
  const color = useMemo(() => {
    const m = max ?? d3.max(activations, (a) => Math.abs(a)) ?? 1;
    // the top of the Oranges ramp is too dark for black text: use its 0.1–0.65 stretch
    return d3.scaleSequential((t) => d3.interpolateOranges(0.1 + 0.55 * t)).domain([0, m > 0 ? m : 1]).clamp(true);
  }, [activations, max]);

  const pieces = useMemo(() => mergeTokens(tokens), [tokens]);
  return (
    <div className="token-highlight" aria-label={label} data-testid="token-highlight">
      {pieces.map(({ text: t, start, end }, i) => {
        const vals = activations.slice(start, end);
        const a = vals.length ? Math.max(...vals.map((v) => v ?? 0)) : 0;
        const hl = highlight?.has(t);
        const title = end - start > 1
          ? `${showToken(t)} (${end - start} byte tokens: ${vals.map((v) => fmt(v)).join(", ")})`
          : `${showToken(t)}: ${fmt(a)}`;
        return (
          <span
            key={i}
            className={`tok${hl ? " tok-hl" : ""}${a > 0 ? " tok-active" : ""}`}
            style={{ backgroundColor: a > 0 ? color(a) : undefined }}
            data-testid="tok"
            data-act={a}
            tabIndex={a > 0 ? 0 : -1}
            title={title}
            onMouseEnter={() => setHover(i)}
            onMouseLeave={() => setHover(null)}
            onFocus={() => setHover(i)}
            onBlur={() => setHover(null)}
          >
            {contextToken(t)}
            {hover === i && (
              <span className="tok-tip" role="tooltip">
                {fmt(a)}
              </span>
            )}
          </span>
        );
      })}
    </div>
  );
}
