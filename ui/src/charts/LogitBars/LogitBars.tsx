import { useMemo } from "react";
import * as d3 from "d3";
import type { TokenProb, TokenValue } from "../../api/types";
import { fmt, useWidth } from "../useWidth";
import { showToken } from "../../tokens/display";

export interface CompareRow {
  token: string;
  original: number | null;
  patched: number | null;
}

/** Union of both top-k lists in original order, then tokens only the patched list has. */
export function compareRows(original: TokenProb[], patched: TokenProb[]): CompareRow[] {
  const byId = new Map<number, CompareRow>();
  for (const t of original) byId.set(t.id, { token: t.token, original: t.prob, patched: null });
  for (const t of patched) {
    const row = byId.get(t.id);
    if (row) row.patched = t.prob;
    else byId.set(t.id, { token: t.token, original: null, patched: t.prob });
  }
  return [...byId.values()];
}

export { showToken };

const ROW = 22;
const LABEL = 90;

/** Original vs patched next-token probabilities, side by side per token. */
export function LogitBars({ original, patched, title = "Next token" }: { original: TokenProb[]; patched: TokenProb[]; title?: string }) {
  const [ref, w] = useWidth<HTMLDivElement>(420);
  const rows = useMemo(() => compareRows(original, patched), [original, patched]);
  const GAP = 48; // room for the value label right of each bar
  const barW = Math.max(40, (w - LABEL - GAP * 2) / 2);
  const x = useMemo(() => {
    const max = d3.max(rows, (r) => Math.max(r.original ?? 0, r.patched ?? 0)) ?? 1;
    return d3.scaleLinear().domain([0, max || 1]).range([0, barW]);
  }, [rows, barW]);

  if (rows.length === 0) return <p className="chart-empty">No logits yet</p>;
  return (
    <figure className="chart logit-bars" ref={ref}>
      <figcaption>
        {title} <span className="legend original">original</span> <span className="legend patched">patched</span>
      </figcaption>
      <svg width={w} height={rows.length * ROW + 4} role="img" aria-label={`${title}: original vs patched probabilities`}>
        {rows.map((r, i) => (
          <g key={`${r.token}-${i}`} transform={`translate(0,${i * ROW})`} data-testid="logit-row" data-token={r.token}>
            <text x={LABEL - 6} y={ROW / 2 + 4} textAnchor="end" className="token-label">
              {showToken(r.token)}
            </text>
            {(["original", "patched"] as const).map((k, j) => {
              const v = r[k];
              const x0 = LABEL + j * (barW + GAP);
              return (
                <g key={k} transform={`translate(${x0},0)`}>
                  {v == null ? (
                    <text x={2} y={ROW / 2 + 4} className="muted">not in top-k</text>
                  ) : (
                    <>
                      <rect y={3} height={ROW - 6} width={x(v)} className={`bar-${k}`} data-testid={`bar-${k}`} data-value={v}>
                        <title>{`${k}: ${fmt(v)}`}</title>
                      </rect>
                      <text x={x(v) + 3} y={ROW / 2 + 4} className="bar-value">{fmt(v, 2)}</text>
                    </>
                  )}
                </g>
              );
            })}
          </g>
        ))}
      </svg>
    </figure>
  );
}

/** ± bars: top positive and negative logit effects of a feature, diverging from zero. */
export function SignedBars({ positive, negative, title }: { positive: TokenValue[]; negative: TokenValue[]; title: string }) {
  const [ref, w] = useWidth<HTMLDivElement>(420);
  const rows = useMemo(
    () => [...positive].sort((a, b) => b.value - a.value).concat([...negative].sort((a, b) => a.value - b.value)),
    [positive, negative],
  );
  const x = useMemo(() => {
    const m = d3.max(rows, (r) => Math.abs(r.value)) ?? 1;
    return d3.scaleLinear().domain([-(m || 1), m || 1]).range([LABEL, w - 50]);
  }, [rows, w]);
  if (rows.length === 0) return <p className="chart-empty">No logit effects</p>;
  return (
    <figure className="chart signed-bars" ref={ref}>
      <figcaption>{title}</figcaption>
      <svg width={w} height={rows.length * ROW + 4} role="img" aria-label={title}>
        <line x1={x(0)} x2={x(0)} y1={0} y2={rows.length * ROW} className="zero" />
        {rows.map((r, i) => (
          <g key={`${r.token}-${i}`} transform={`translate(0,${i * ROW})`} data-testid="signed-row">
            <text x={LABEL - 6} y={ROW / 2 + 4} textAnchor="end" className="token-label">{showToken(r.token)}</text>
            <rect
              x={Math.min(x(0), x(r.value))}
              y={3}
              height={ROW - 6}
              width={Math.abs(x(r.value) - x(0))}
              className={r.value >= 0 ? "bar-pos" : "bar-neg"}
            >
              <title>{`${r.token}: ${fmt(r.value)}`}</title>
            </rect>
            <text x={w - 46} y={ROW / 2 + 4} className="bar-value">{fmt(r.value, 2)}</text>
          </g>
        ))}
      </svg>
    </figure>
  );
}
