import { useMemo } from "react";
import * as d3 from "d3";
import { Axis } from "../Axis";
import { fmt, useWidth } from "../useWidth";

export interface Point {
  x: number;
  y: number | null;
}

export interface Series {
  name: string;
  points: Point[];
  color?: string;
}

export interface LineChartProps {
  title: string;
  series: Series[];
  xLabel?: string;
  height?: number;
  /** log-scale y (loss curves) */
  logY?: boolean;
  width?: number;
}

const M = { top: 8, right: 12, bottom: 28, left: 48 };
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

/** Live metric curves. Points with y = null (not yet reported) are gaps. */
export function LineChart({ title, series, xLabel = "step", height = 180, logY = false, width }: LineChartProps) {
  const [ref, measured] = useWidth<HTMLDivElement>(width ?? 360);
  const w = width ?? measured;
  const innerW = Math.max(10, w - M.left - M.right);
  const innerH = Math.max(10, height - M.top - M.bottom);

  const all = useMemo(
    () => series.flatMap((s) => s.points).filter((p) => p.y != null && Number.isFinite(p.y) && (!logY || p.y > 0)),
    [series, logY],
  );
  const x = useMemo(() => {
    const ext = d3.extent(all, (p) => p.x) as [number, number] | [undefined, undefined];
    const lo = ext[0] ?? 0;
    const hi = ext[1] ?? 1;
    return d3.scaleLinear().domain([lo, hi === lo ? lo + 1 : hi]).range([0, innerW]);
  }, [all, innerW]);
  const y = useMemo(() => {
    const ext = d3.extent(all, (p) => p.y as number) as [number, number] | [undefined, undefined];
    const lo = ext[0] ?? 0;
    const hi = ext[1] ?? 1;
    if (logY) return d3.scaleLog().domain([lo, hi === lo ? lo * 10 : hi]).range([innerH, 0]).nice();
    return d3.scaleLinear().domain([Math.min(0, lo), hi === lo ? lo + 1 : hi]).range([innerH, 0]).nice();
  }, [all, innerH, logY]);
  const paths = useMemo(() => {
    const line = d3
      .line<Point>()
      .defined((p) => p.y != null && Number.isFinite(p.y) && (!logY || p.y > 0))
      .x((p) => x(p.x))
      .y((p) => y(p.y as number));
    return series.map((s, i) => ({ name: s.name, d: line(s.points) ?? "", color: s.color ?? PALETTE[i % PALETTE.length] }));
  }, [series, x, y, logY]);

  const last = series.map((s) => ({ name: s.name, p: [...s.points].reverse().find((p) => p.y != null) }));

  return (
    <figure className="chart line-chart" ref={ref}>
      <figcaption>
        {title}
        {last.map(({ name, p }) => (
          <span key={name} className="chart-last" data-testid={`last-${name}`}>
            {series.length > 1 ? `${name}: ` : ""}
            {fmt(p?.y)}
          </span>
        ))}
      </figcaption>
      {all.length === 0 ? (
        <p className="chart-empty">No data yet</p>
      ) : (
        <svg width={w} height={height} role="img" aria-label={`${title} chart`}>
          <g transform={`translate(${M.left},${M.top})`}>
            <Axis scale={x} orient="bottom" transform={`translate(0,${innerH})`} />
            <Axis scale={y} orient="left" ticks={4} />
            {paths.map((p) => (
              <path key={p.name} d={p.d} fill="none" stroke={p.color} strokeWidth={1.5} data-series={p.name} />
            ))}
            <text x={innerW} y={innerH + 24} textAnchor="end" className="axis-label">
              {xLabel}
            </text>
          </g>
        </svg>
      )}
    </figure>
  );
}
