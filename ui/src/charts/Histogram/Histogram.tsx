import { useMemo, useState } from "react";
import * as d3 from "d3";
import { Axis } from "../Axis";
import { fmt, useWidth } from "../useWidth";

export interface HistogramProps {
  title: string;
  /** n+1 bin edges */
  edges: number[];
  /** n counts */
  counts: number[];
  xLabel?: string;
  logY?: boolean;
  height?: number;
  width?: number;
  color?: string;
}

const M = { top: 8, right: 12, bottom: 28, left: 48 };

/** Bars over precomputed bins (activation or logit-weight histograms). */
export function Histogram({ title, edges, counts, xLabel, logY = false, height = 160, width, color = "#2563eb" }: HistogramProps) {
  const [ref, measured] = useWidth<HTMLDivElement>(width ?? 360);
  const w = width ?? measured;
  const innerW = Math.max(10, w - M.left - M.right);
  const innerH = Math.max(10, height - M.top - M.bottom);
  const [hover, setHover] = useState<number | null>(null);
  const valid = edges.length === counts.length + 1 && counts.length > 0;

  const x = useMemo(() => {
    const lo = valid ? edges[0] : 0;
    const hi = valid ? edges[edges.length - 1] : 1;
    return d3.scaleLinear().domain([lo, hi === lo ? lo + 1 : hi]).range([0, innerW]);
  }, [edges, valid, innerW]);
  const y = useMemo(() => {
    const max = d3.max(counts) ?? 1;
    return logY
      ? d3.scaleSymlog().domain([0, Math.max(1, max)]).range([innerH, 0])
      : d3.scaleLinear().domain([0, Math.max(1, max)]).range([innerH, 0]).nice();
  }, [counts, logY, innerH]);

  if (!valid) {
    return (
      <figure className="chart histogram">
        <figcaption>{title}</figcaption>
        <p className="chart-empty">No histogram</p>
      </figure>
    );
  }
  return (
    <figure className="chart histogram" ref={ref}>
      <figcaption>
        {title}
        {hover != null && (
          <span className="chart-last" data-testid="hist-hover">
            [{fmt(edges[hover])}, {fmt(edges[hover + 1])}): {counts[hover]}
          </span>
        )}
      </figcaption>
      <svg width={w} height={height} role="img" aria-label={`${title} histogram`}>
        <g transform={`translate(${M.left},${M.top})`}>
          {counts.map((c, i) => {
            const x0 = x(edges[i]);
            const x1 = x(edges[i + 1]);
            return (
              <rect
                key={i}
                data-testid="hist-bar"
                x={x0}
                y={y(c)}
                width={Math.max(0.5, x1 - x0 - 1)}
                height={innerH - y(c)}
                fill={color}
                opacity={hover === i ? 1 : 0.75}
                onMouseEnter={() => setHover(i)}
                onMouseLeave={() => setHover(null)}
              >
                <title>{`[${fmt(edges[i])}, ${fmt(edges[i + 1])}): ${c}`}</title>
              </rect>
            );
          })}
          <Axis scale={x} orient="bottom" transform={`translate(0,${innerH})`} />
          <Axis scale={y} orient="left" ticks={4} />
          {xLabel && (
            <text x={innerW} y={innerH + 24} textAnchor="end" className="axis-label">
              {xLabel}
            </text>
          )}
        </g>
      </svg>
    </figure>
  );
}
