import type { Architecture, MetricPoint, TrainingMetrics, TrainingProgress, TrainingRun, TrainingRunDetail } from "../../api/types";
import type { TrainingProgressMsg } from "../../ws/messages";

/** One charted point: a metric-history row or a live progress message, flattened. */
export interface ChartPoint extends TrainingMetrics {
  step: number;
  tokens: number;
  /** each SAE's own numbers at this step (empty for rows written before per-member metrics) */
  members: MemberPoint[];
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** A history row {step, tokens, data:{mse, fvu, ...}} as a chart point. */
export function fromHistory(p: MetricPoint): ChartPoint {
  const d = p.data ?? {};
  return {
    step: p.step, tokens: p.tokens, mse: num(d.mse), fvu: num(d.fvu), l0: num(d.l0),
    dead_fraction: num(d.dead_fraction), tokens_per_s: num(d.tokens_per_s), eta_s: num(d.eta_s),
    members: memberPoints(p.step, d.members),
  };
}

export function fromMessage(m: TrainingProgressMsg): { point: ChartPoint; progress: TrainingProgress } {
  return {
    point: {
      step: m.step, tokens: m.tokens, mse: m.mse, fvu: m.fvu, l0: m.l0, dead_fraction: m.dead_fraction,
      members: memberPoints(m.step, m.members),
    },
    progress: {
      step: m.step, tokens: m.tokens, total_tokens: m.total_tokens, tokens_per_s: m.tokens_per_s ?? null,
      eta_s: m.eta_s ?? null, phase: m.phase ?? null, phase_done: m.phase_done, phase_total: m.phase_total,
      phase_unit: m.phase_unit, passes: m.passes,
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

/** "512, 1024" -> [512, 1024]; blank -> []; null when a part is not a positive number. */
export function parseNumList(text: string, integer = true): number[] | null {
  const parts = text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
  const out: number[] = [];
  for (const p of parts) {
    const v = Number(p);
    if (!Number.isFinite(v) || v < 0 || (integer && (!Number.isInteger(v) || v < 1))) return null;
    out.push(v);
  }
  return [...new Set(out)];
}

/** One SAE of a sweep grid, as the server orders them (hooks, then architectures, widths, k / L1). */
export interface GridMember {
  layer: number;
  architecture: Architecture;
  d_sae: number;
  k: number | null;
  l1_coefficient: number | null;
}

/**
 * The SAEs a request trains: every layer x architecture x width x (k for topk/batchtopk, L1 for standard),
 * the same expansion as the server's training/sweep.members. `error` names a member the server would refuse.
 */
export function sweepGrid(
  layers: number[], architectures: Architecture[], widths: number[], ks: number[], l1s: number[],
): { members: GridMember[]; error: string | null } {
  const members: GridMember[] = [];
  let error: string | null = null;
  for (const layer of layers) {
    for (const architecture of architectures) {
      for (const d of widths) {
        if (architecture === "standard") {
          for (const l1 of l1s) members.push({ layer, architecture, d_sae: d, k: null, l1_coefficient: l1 });
        } else {
          for (const k of ks) {
            if (k > d && !error) error = `a ${architecture} SAE needs k <= d_sae (k ${k}, d_sae ${d})`;
            members.push({ layer, architecture, d_sae: d, k, l1_coefficient: null });
          }
        }
      }
    }
  }
  if (!error && members.length > MAX_MEMBERS) {
    error = `${members.length} SAEs (layers x grid); at most ${MAX_MEMBERS} per run: split the sweep`;
  }
  return { members, error };
}

/** the server trains at most this many SAEs in one run */
export const MAX_MEMBERS = 64;

/** Short label of a member: "topk 4608 k32" / "standard 4608 L1 5" (+ lr when given). */
export function memberLabel(m: { architecture: string; d_sae: number; k?: number | null; l1_coefficient?: number | null; lr?: number | null }, withLr = false): string {
  const sparsity = m.architecture === "standard" ? `L1 ${m.l1_coefficient ?? "?"}` : `k${m.k ?? "?"}`;
  return `${m.architecture} ${m.d_sae} ${sparsity}${withLr && m.lr != null ? ` lr ${m.lr.toExponential(1)}` : ""}`;
}

/** One member's numbers at one step (history row `data.members[i]` or a live message's `members[i]`). */
export interface MemberPoint {
  step: number;
  index: number;
  hook_name: string;
  label: string;
  mse: number | null;
  fvu: number | null;
  l0: number | null;
  dead_fraction: number | null;
}

type MemberLike = { index?: unknown; hook_name?: unknown; architecture?: unknown; d_sae?: unknown; k?: unknown;
  l1_coefficient?: unknown; mse?: unknown; fvu?: unknown; l0?: unknown; dead_fraction?: unknown };

/** The per-member numbers of a history row or a live message (none for rows written before sweeps). */
export function memberPoints(step: number, members: unknown): MemberPoint[] {
  if (!Array.isArray(members)) return [];
  return (members as MemberLike[]).filter((m) => m && typeof m === "object" && typeof m.hook_name === "string").map((m, i) => ({
    step,
    index: typeof m.index === "number" ? m.index : i,
    hook_name: m.hook_name as string,
    label: memberLabel({
      architecture: String(m.architecture ?? "?"), d_sae: num(m.d_sae) ?? 0, k: num(m.k), l1_coefficient: num(m.l1_coefficient),
    }),
    mse: num(m.mse), fvu: num(m.fvu), l0: num(m.l0), dead_fraction: num(m.dead_fraction),
  }));
}
