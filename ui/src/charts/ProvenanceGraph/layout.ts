import * as d3 from "d3";
import type { ProvEdge, ProvNode } from "../../api/types";

export interface Placed extends ProvNode {
  x: number;
  y: number;
  column: number;
}

/** Vertical room per node: circle (radius 14), its label under it, and a gap — nodes of a column never overlap. */
export const ROW = 48;
const TOP = 34;

/** Column of a node: its layer; logit nodes go one column right of the deepest layer. */
function columnOf(n: ProvNode, maxLayer: number): number {
  return n.kind === "logit" ? maxLayer + 1 : n.layer;
}

const isLogitEdge = (e: ProvEdge) => e.target.startsWith("logit/");

/** Edges at or above the prune threshold (|weight|), and the nodes they touch (the target always stays). */
export function prune(nodes: ProvNode[], edges: ProvEdge[], threshold: number) {
  const kept = edges.filter((e) => Math.abs(e.weight) >= threshold);
  const used = new Set<string>();
  for (const e of kept) {
    used.add(e.source);
    used.add(e.target);
  }
  const keptNodes = nodes.filter((n) => used.has(n.id) || n.kind === "target");
  const ids = new Set(keptNodes.map((n) => n.id));
  return { nodes: keptNodes, edges: kept.filter((e) => ids.has(e.source) && ids.has(e.target)) };
}

/** Share of each node's incoming |weight| to keep, per edge class. */
export interface Keep {
  /** feature → feature edges (upstream attribution / virtual weights) */
  feature: number;
  /** target → logit edges (direct logit effects) */
  logit: number;
}

/**
 * Pruning by cumulative share, per edge class: into each node, its incoming edges of a class are taken strongest
 * first until they carry `keep[class]` of that node's total |weight| in the class (the strongest always stays).
 * Feature and logit edges are pruned separately, so the scale of logit effects never decides which upstream
 * features stay. Nodes no longer connected to the target through kept edges go too.
 */
export function pruneByShare(nodes: ProvNode[], edges: ProvEdge[], keep: Keep) {
  const groups = d3.group(edges, (e) => `${isLogitEdge(e) ? "logit" : "feature"}|${e.target}`);
  const kept: ProvEdge[] = [];
  for (const [key, group] of groups) {
    const share = Math.min(1, Math.max(0, key.startsWith("logit") ? keep.logit : keep.feature));
    const sorted = [...group].sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    const total = d3.sum(sorted, (e) => Math.abs(e.weight));
    let acc = 0;
    for (const e of sorted) {
      if (kept.length > 0 && acc >= share * total - 1e-12 && e !== sorted[0]) break;
      kept.push(e);
      acc += Math.abs(e.weight);
    }
  }
  // keep what still connects to the target: upstream by walking kept edges backwards, logits forwards
  const target = nodes.find((n) => n.kind === "target")?.id;
  const reach = new Set<string>(target ? [target] : []);
  let grew = true;
  while (grew) {
    grew = false;
    for (const e of kept) {
      if (reach.has(e.target) && !reach.has(e.source) && !isLogitEdge(e)) {
        reach.add(e.source);
        grew = true;
      }
    }
  }
  for (const e of kept) if (isLogitEdge(e) && reach.has(e.source)) reach.add(e.target);
  return {
    nodes: nodes.filter((n) => reach.has(n.id)),
    edges: kept.filter((e) => reach.has(e.source) && reach.has(e.target)),
  };
}

/** Height the layout needs: at least `minHeight`, and ROW per node of the fullest column. */
export function layoutHeight(nodes: ProvNode[], minHeight: number, pad = 40): number {
  const maxLayer = d3.max(nodes.filter((n) => n.kind !== "logit"), (n) => n.layer) ?? 0;
  const counts = d3.rollup(nodes, (g) => g.length, (n) => columnOf(n, maxLayer));
  const most = d3.max([...counts.values()]) ?? 0;
  return Math.max(minHeight, TOP + most * ROW + pad);
}

/**
 * Layered layout: one column per layer, strongest activation on top, nodes ROW apart so that circles and labels of a
 * column never overlap (call with `layoutHeight` or more).
 */
export function layeredLayout(nodes: ProvNode[], width: number, height: number, pad = 40): Placed[] {
  const maxLayer = d3.max(nodes.filter((n) => n.kind !== "logit"), (n) => n.layer) ?? 0;
  const columns = [...new Set(nodes.map((n) => columnOf(n, maxLayer)))].sort((a, b) => a - b);
  const x = d3.scalePoint<number>().domain(columns).range([pad + 40, width - pad - 40]).padding(columns.length === 1 ? 0.5 : 0);
  const groups = d3.group(nodes, (n) => columnOf(n, maxLayer));
  const out: Placed[] = [];
  for (const [col, group] of groups) {
    const sorted = [...group].sort((a, b) => Math.abs(b.activation ?? 0) - Math.abs(a.activation ?? 0) || a.feature - b.feature);
    // each node owns ROW of height (half above, half below its centre); spread up to 2·ROW apart when there is room
    const room = Math.max(ROW, height - TOP - pad);
    const step = sorted.length > 1 ? Math.max(ROW, Math.min((room - ROW) / (sorted.length - 1), ROW * 2)) : 0;
    const top = TOP + ROW / 2 + Math.max(0, (room - ROW - step * (sorted.length - 1)) / 2);
    sorted.forEach((n, i) => out.push({ ...n, column: col, x: x(col) ?? width / 2, y: top + i * step }));
  }
  return out;
}

/** A label cut to `max` characters with an ellipsis (the full text goes in the tooltip). */
export function truncate(s: string, max = 16): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** A feature label made short for a node: "top token(s): " dropped, "promotes: " as "→ ". */
export function shortLabel(label: string): string {
  return label.replace(/^top tokens?: /, "").replace(/^promotes: /, "→ ");
}
