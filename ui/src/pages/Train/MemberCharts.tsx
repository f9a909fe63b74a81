import { useMemo } from "react";
import * as d3 from "d3";
import { LineChart, type Series } from "../../charts/LineChart/LineChart";
import type { ChartPoint, MemberPoint } from "./trainData";

const METRICS = [
  ["mse", "Loss (MSE)", true],
  ["fvu", "FVU", false],
  ["l0", "L0", false],
  ["dead_fraction", "Dead fraction", false],
] as const;

/** A stable colour per member index (the same SAE keeps its colour in every chart). */
export const memberColor = (index: number) => d3.schemeTableau10[index % 10];

/** The member points of a history, grouped by hook, each hook's members in run order. */
export function byHook(history: ChartPoint[]): Map<string, Map<number, MemberPoint[]>> {
  const out = new Map<string, Map<number, MemberPoint[]>>();
  for (const p of history) {
    for (const m of p.members) {
      let hook = out.get(m.hook_name);
      if (!hook) out.set(m.hook_name, (hook = new Map()));
      const line = hook.get(m.index);
      if (line) line.push(m);
      else hook.set(m.index, [m]);
    }
  }
  return out;
}

/**
 * The live metrics of every SAE of a run: one block of charts per hook (a multi-layer run shows each layer's
 * own numbers), one line per SAE in each chart (a sweep's members side by side).
 */
export function MemberCharts({ history }: { history: ChartPoint[] }) {
  const hooks = useMemo(() => byHook(history), [history]);
  return (
    <div data-testid="train-charts" data-per-member="true">
      {[...hooks.entries()].map(([hook, members]) => (
        <section key={hook} className="hook-charts" data-testid="hook-charts" data-hook={hook} aria-label={`Metrics at ${hook}`}>
          <h3 className="mono small">{hook}</h3>
          <div className="chart-grid">
            {METRICS.map(([key, title, logY]) => {
              const series: Series[] = [...members.entries()].sort(([a], [b]) => a - b).map(([index, pts]) => ({
                name: `#${index} ${pts[0].label}`,
                color: memberColor(index),
                points: pts.map((p) => ({ x: p.step, y: p[key] })),
              }));
              return <LineChart key={key} title={title} series={series} logY={logY} xLabel="step" />;
            })}
          </div>
        </section>
      ))}
    </div>
  );
}
