import * as d3 from "d3";
import type { CircuitEdge, CircuitNode } from "../../api/types";

export interface PlacedNode extends CircuitNode {
  x: number;
  y: number;
}

export interface CircuitLayout {
  nodes: PlacedNode[];
  byId: Map<number, PlacedNode>;
  width: number;
  height: number;
  /** x of each prompt position's column centre */
  columnX: (pos: number) => number;
  /** y of a row: -1 tokens (bottom), 0..n_layers-1 layers, n_layers logits (top) */
  rowY: (layer: number) => number;
}

export const ROW_H = 20;
export const COL_MIN = 64;
const PAD = { left: 56, right: 24, top: 36, bottom: 40 };

/** Row of a node: tokens at the bottom (-1), features and errors at their layer, logits on top (n_layers). */
export function rowOf(n: CircuitNode, nLayers: number): number {
  if (n.kind === "token") return -1;
  if (n.kind === "logit") return nLayers;
  return n.layer;
}

/**
 * Positions left to right, layers bottom to top, logits on top. Nodes sharing a (position, row) cell spread
 * across the cell's width, strongest influence in the middle; logits (all at the last position) spread wider.
 */
export function layoutCircuit(nodes: CircuitNode[], nPos: number, nLayers: number, minWidth: number): CircuitLayout {
  const width = Math.max(minWidth, PAD.left + PAD.right + nPos * COL_MIN);
  const height = PAD.top + PAD.bottom + (nLayers + 2) * ROW_H;
  const x = d3.scaleBand<number>().domain(d3.range(nPos)).range([PAD.left, width - PAD.right]).padding(0.08);
  const y = d3.scaleLinear().domain([-1, nLayers]).range([height - PAD.bottom, PAD.top]);
  const cells = d3.group(nodes, (n) => `${n.pos}:${rowOf(n, nLayers)}`);
  const placed: PlacedNode[] = [];
  for (const group of cells.values()) {
    const key = (n: CircuitNode) => (n.kind === "logit" ? n.probability ?? 0 : n.influence);
    const sorted = [...group].sort((a, b) => key(b) - key(a) || a.node - b.node);
    const first = sorted[0];
    const row = rowOf(first, nLayers);
    const cx = (x(first.pos) ?? PAD.left) + x.bandwidth() / 2;
    const step = row === nLayers ? 46 : sorted.length > 1 ? Math.min(x.bandwidth() / sorted.length, 14) : 0;
    sorted.forEach((n, i) => {
      // logits (at the last position) run leftwards from it, most probable rightmost; other cells fill from
      // the centre outwards: 0, +1, -1, +2, -2, ...
      const k = row === nLayers ? -i : i === 0 ? 0 : (i % 2 ? 1 : -1) * Math.ceil(i / 2);
      placed.push({ ...n, x: cx + k * step, y: y(row) });
    });
  }
  return {
    nodes: placed,
    byId: new Map(placed.map((p) => [p.node, p])),
    width,
    height,
    columnX: (pos) => (x(pos) ?? PAD.left) + x.bandwidth() / 2,
    rowY: (row) => y(row),
  };
}

/** Edges whose both ends are drawn, strongest last (drawn on top). */
export function drawnEdges(edges: CircuitEdge[], byId: Map<number, PlacedNode>): CircuitEdge[] {
  return edges.filter((e) => byId.has(e.source) && byId.has(e.target)).sort((a, b) => Math.abs(a.weight) - Math.abs(b.weight));
}

export function nodeTitle(n: CircuitNode): string {
  const tok = JSON.stringify(n.token ?? "").slice(1, -1);
  switch (n.kind) {
    case "feature":
      return `${n.label || `feature ${n.feature}`} (layer ${n.layer}, #${n.feature}, at “${tok}”)`;
    case "error":
      return `MLP error, layer ${n.layer} at “${tok}”`;
    case "token":
      return `token “${tok}” (position ${n.pos})`;
    default:
      return `output “${tok}” (p = ${(n.probability ?? 0).toFixed(3)})`;
  }
}
