import type { MetricPoint, TrainingMetrics, TrainingProgress, TrainingRun, TrainingRunDetail } from "../../api/types";
import type { TrainingProgressMsg } from "../../ws/messages";

/** One charted point: a metric-history row or a live progress message, flattened. */
export interface ChartPoint extends TrainingMetrics {
  step: number;
  tokens: number;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** A history row {step, tokens, data:{mse, fvu, ...}} as a chart point. */
export function fromHistory(p: MetricPoint): ChartPoint {
  const d = p.data ?? {};
  return {
    step: p.step, tokens: p.tokens, mse: num(d.mse), fvu: num(d.fvu), l0: num(d.l0),
    dead_fraction: num(d.dead_fraction), tokens_per_s: num(d.tokens_per_s), eta_s: num(d.eta_s),
  };
}

export function fromMessage(m: TrainingProgressMsg): { point: ChartPoint; progress: TrainingProgress } {
  return {
    point: { step: m.step, tokens: m.tokens, mse: m.mse, fvu: m.fvu, l0: m.l0, dead_fraction: m.dead_fraction },
    progress: {
      step: m.step, tokens: m.tokens, total_tokens: m.total_tokens, tokens_per_s: m.tokens_per_s ?? null,
      eta_s: m.eta_s ?? null, phase: m.phase ?? null,
    },
  };
}

/** Progress as the run row last stored it (before any live message arrives). */
export function fromRun(run: TrainingRun | TrainingRunDetail): TrainingProgress {
  const latest = "latest" in run && run.latest ? run.latest : {};
  return {
    step: run.step, tokens: run.tokens_seen, total_tokens: run.total_tokens,
    tokens_per_s: num(latest.tokens_per_s), eta_s: num(latest.eta_s), phase: null,
  };
}

/** "6" -> {layer: 6}; "0,1,2" or "0-2" -> {layers: [0,1,2]}; null when it does not parse. */
export function parseLayers(text: string): { layer: number } | { layers: number[] } | null {
  const out: number[] = [];
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const range = /^(\d+)\s*-\s*(\d+)$/.exec(part);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (b < a) return null;
      for (let i = a; i <= b; i++) out.push(i);
    } else if (/^\d+$/.test(part)) out.push(Number(part));
    else return null;
  }
  const uniq = [...new Set(out)];
  if (uniq.length === 0) return null;
  return uniq.length === 1 ? { layer: uniq[0] } : { layers: uniq };
}

/** The layer/hook label of a run from its hook names (blocks.3.hook_resid_post -> "3 resid_post"). */
export function hooksLabel(hookNames: string[]): string {
  const parsed = hookNames.map((h) => /^blocks\.(\d+)\.hook_(\w+)$/.exec(h));
  if (parsed.every(Boolean) && new Set(parsed.map((p) => p![2])).size === 1) {
    return `${parsed.map((p) => p![1]).join(", ")} · ${parsed[0]![2]}`;
  }
  return hookNames.join(", ");
}
