import { useMemo } from "react";
import * as d3 from "d3";
import { Axis } from "../Axis";
import { fmt, useWidth } from "../useWidth";

export interface ScatterPoint {
  /** stable id (the member's index in its run) */
  id: number;
  label: string;
  /** L0: mean active latents per token */
  x: number;
  /** FVU: fraction of variance unexplained */
  y: number;
}

export interface ParetoScatterProps {
  title: string;
  points: ScatterPoint[];
  xLabel?: string;
  yLabel?: string;
  height?: number;
  width?: number;
}

const M = { top: 10, right: 16, bottom: 32, left: 52 };

/**
 * The points no other point beats on both axes (lower is better on each), ordered by x: a point is on the
 * frontier when every point with a smaller-or-equal x has a larger y.
 */
export function paretoFront(points: ScatterPoint[]): ScatterPoint[] {
  const sorted = [...points].sort((a, b) => a.x - b.x || a.y - b.y);
  const front: ScatterPoint[] = [];
  let best = Infinity;
  for (const p of sorted) {
    if (p.y < best) {
      front.push(p);
      best = p.y;
    }
  }
  return front;
}

/** L0 vs FVU of a sweep's SAEs at one hook: one circle per SAE, the Pareto frontier joined by a line. */
export function ParetoScatter({ title, points, xLabel = "L0", yLabel = "FVU", height = 220, width }: ParetoScatterProps) {
  const [ref, measured] = useWidth<HTMLDivElement>(width ?? 360);
  const w = width ?? measured;
  const innerW = Math.max(10, w - M.left - M.right);
  const innerH = Math.max(10, height - M.top - M.bottom);
  const valid = useMemo(() => points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)), [points]);
  const x = useMemo(() => {
    const [lo, hi] = d3.extent(valid, (p) => p.x) as [number, number] | [undefined, undefined];
    const a = Math.min(0, lo ?? 0);
    const b = hi ?? 1;
    return d3.scaleLinear().domain([a, b === a ? a + 1 : b]).range([0, innerW]).nice();
  }, [valid, innerW]);
  const y = useMemo(() => {
    const hi = d3.max(valid, (p) => p.y) ?? 1;
    return d3.scaleLinear().domain([0, hi > 0 ? hi : 1]).range([innerH, 0]).nice();
  }, [valid, innerH]);
  const front = useMemo(() => paretoFront(valid), [valid]);
  const onFront = new Set(front.map((p) => p.id));
  const frontPath = d3.line<ScatterPoint>().x((p) => x(p.x)).y((p) => y(p.y))(front) ?? "";

  return (
    <figure className="chart pareto-chart" ref={ref}>
      <figcaption>{title}</figcaption>
      {valid.length === 0 ? (
        <p className="chart-empty">No finished SAEs</p>
      ) : (
        <svg width={w} height={height} role="img" aria-label={`${title} chart`}>
          <g transform={`translate(${M.left},${M.top})`}>
            <Axis scale={x} orient="bottom" transform={`translate(0,${innerH})`} />
            <Axis scale={y} orient="left" ticks={4} />
            {front.length > 1 && <path d={frontPath} fill="none" stroke="#16a34a" strokeDasharray="4 3" data-testid="pareto-front" />}
            {valid.map((p) => (
              <circle
                key={p.id}
                cx={x(p.x)}
                cy={y(p.y)}
                r={onFront.has(p.id) ? 5 : 4}
                fill={onFront.has(p.id) ? "#16a34a" : "#2563eb"}
                data-member={p.id}
                data-front={onFront.has(p.id) ? "true" : "false"}
              >
                <title>{`${p.label}: ${xLabel} ${fmt(p.x)}, ${yLabel} ${fmt(p.y)}`}</title>
              </circle>
            ))}
            <text x={innerW} y={innerH + 28} textAnchor="end" className="axis-label">{xLabel}</text>
            <text x={-M.left + 4} y={-2} className="axis-label">{yLabel}</text>
          </g>
        </svg>
      )}
    </figure>
  );
}
