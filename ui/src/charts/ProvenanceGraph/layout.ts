import * as d3 from "d3";
import type { ProvEdge, ProvNode } from "../../api/types";

export interface Placed extends ProvNode {
  x: number;
  y: number;
  column: number;
}

/** Column of a node: its layer; logit nodes go one column right of the deepest layer. */
function columnOf(n: ProvNode, maxLayer: number): number {
  return n.kind === "logit" ? maxLayer + 1 : n.layer;
}

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

/** Layered layout: one column per layer, nodes spread evenly, strongest activation on top. */
export function layeredLayout(nodes: ProvNode[], width: number, height: number, pad = 40): Placed[] {
  const maxLayer = d3.max(nodes.filter((n) => n.kind !== "logit"), (n) => n.layer) ?? 0;
  const columns = [...new Set(nodes.map((n) => columnOf(n, maxLayer)))].sort((a, b) => a - b);
  const x = d3.scalePoint<number>().domain(columns).range([pad + 40, width - pad - 40]).padding(columns.length === 1 ? 0.5 : 0);
  const groups = d3.group(nodes, (n) => columnOf(n, maxLayer));
  const out: Placed[] = [];
  for (const [col, group] of groups) {
    const sorted = [...group].sort((a, b) => Math.abs(b.activation ?? 0) - Math.abs(a.activation ?? 0) || a.feature - b.feature);
    const y = d3.scalePoint<number>().domain(sorted.map((_, i) => i)).range([pad, height - pad]).padding(0.5);
    sorted.forEach((n, i) => out.push({ ...n, column: col, x: x(col) ?? width / 2, y: y(i) ?? height / 2 }));
  }
  return out;
}
