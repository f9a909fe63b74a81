import { useMemo, useState, type KeyboardEvent } from "react";
import * as d3 from "d3";
import type { CircuitEdge, CircuitNode } from "../../api/types";
import { fmt, useWidth } from "../useWidth";
import { drawnEdges, layoutCircuit, nodeTitle, type PlacedNode } from "./layout";
import { NodeTip } from "./NodeTip";

export interface Supernode {
  id: string;
  label: string;
  members: number[];
}

export interface CircuitGraphProps {
  nodes: CircuitNode[];
  edges: CircuitEdge[];
  promptTokens: string[];
  nLayers: number;
  selected?: number | null;
  /** the logit node of the circuit's target token (drawn emphasised) */
  target?: number | null;
  pinned?: ReadonlySet<number>;
  supernodes?: Supernode[];
  onSelect?: (node: CircuitNode) => void;
  onTogglePin?: (node: CircuitNode) => void;
  width?: number;
}

const R = 6;

function shape(n: PlacedNode) {
  if (n.kind === "error") return <rect x={-R} y={-R} width={2 * R} height={2 * R} />;
  if (n.kind === "token") return <rect x={-R - 2} y={-R + 1} width={2 * R + 4} height={2 * R - 2} rx={3} />;
  if (n.kind === "logit") return <rect x={-20} y={-R - 1} width={40} height={2 * R + 2} rx={4} />;
  return <circle r={R} />;
}

/**
 * An attribution graph: prompt positions left to right, layers bottom to top, logits on top; edges coloured by
 * sign, width by |weight|. Hover a node for its label and top contexts, click (or Enter) to select it, "p" to
 * pin it. Pinned nodes are outlined; supernodes are boxes around their members with their label.
 */
export function CircuitGraph({ nodes, edges, promptTokens, nLayers, selected = null, target = null, pinned = new Set(),
  supernodes = [], onSelect, onTogglePin, width }: CircuitGraphProps) {
  const [ref, measured] = useWidth<HTMLDivElement>(width ?? 900);
  const [hover, setHover] = useState<PlacedNode | null>(null);
  const lay = useMemo(() => layoutCircuit(nodes, promptTokens.length, nLayers, width ?? measured),
    [nodes, promptTokens.length, nLayers, width, measured]);
  const shown = useMemo(() => drawnEdges(edges, lay.byId), [edges, lay]);
  const stroke = useMemo(() => {
    const max = d3.max(shown, (e) => Math.abs(e.weight)) ?? 1;
    return d3.scaleSqrt().domain([0, max || 1]).range([0.3, 5]);
  }, [shown]);
  const touching = useMemo(() => {
    const focus = hover?.node ?? selected;
    if (focus == null) return null;
    return new Set(shown.filter((e) => e.source === focus || e.target === focus).flatMap((e) => [e.source, e.target]));
  }, [hover, selected, shown]);

  if (nodes.length === 0) return <p className="chart-empty">No graph</p>;
  const key = (n: CircuitNode) => (e: KeyboardEvent) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      onSelect?.(n);
    } else if (e.key === "p" || e.key === "P") onTogglePin?.(n);
  };
  const rows = d3.range(nLayers);
  return (
    <div className="chart circuit" ref={ref} style={{ position: "relative", overflowX: "auto" }}>
      <svg width={lay.width} height={lay.height} role="group" aria-label="Attribution graph" data-testid="circuit-graph">
        {rows.map((l) => (
          <g key={l}>
            <line x1={40} x2={lay.width - 16} y1={lay.rowY(l)} y2={lay.rowY(l)} className="row-rule" />
            {l % 5 === 0 && <text x={4} y={lay.rowY(l) + 3} className="layer-label">L{l}</text>}
          </g>
        ))}
        <text x={4} y={lay.rowY(nLayers) + 3} className="layer-label">logits</text>
        {promptTokens.map((t, p) => (
          <text key={p} x={lay.columnX(p)} y={lay.height - 8} textAnchor="middle" className="token-label">
            {JSON.stringify(t).slice(1, -1).slice(0, 10)}
          </text>
        ))}
        {supernodes.map((s) => {
          const ms = s.members.map((m) => lay.byId.get(m)).filter((m): m is PlacedNode => !!m);
          if (!ms.length) return null;
          const [x0, x1] = d3.extent(ms, (m) => m.x) as [number, number];
          const [y0, y1] = d3.extent(ms, (m) => m.y) as [number, number];
          return (
            <g key={s.id} className="supernode" data-testid="supernode" aria-label={`Supernode ${s.label}`}>
              <rect x={x0 - 12} y={y0 - 12} width={x1 - x0 + 24} height={y1 - y0 + 24} rx={8} />
              <text x={x0 - 10} y={y0 - 15} className="supernode-label">{s.label}</text>
            </g>
          );
        })}
        {shown.map((e) => {
          const a = lay.byId.get(e.source)!;
          const b = lay.byId.get(e.target)!;
          const dim = touching && !(touching.has(e.source) && touching.has(e.target));
          return (
            <line key={`${e.source}-${e.target}`} data-testid="circuit-edge" x1={a.x} y1={a.y} x2={b.x} y2={b.y}
              strokeWidth={stroke(Math.abs(e.weight))} className={`edge ${e.weight >= 0 ? "edge-pos" : "edge-neg"}`}
              strokeOpacity={dim ? 0.08 : undefined}>
              <title>{`${fmt(e.weight)}`}</title>
            </line>
          );
        })}
        {lay.nodes.map((n) => (
          <g key={n.node} data-testid="circuit-node" data-node={n.node} data-kind={n.kind}
            data-pinned={pinned.has(n.node) ? "true" : undefined} data-selected={selected === n.node ? "true" : undefined}
            data-target={target === n.node ? "true" : undefined}
            transform={`translate(${n.x},${n.y})`} tabIndex={0} role="button"
            aria-label={nodeTitle(n) + (target === n.node ? ", target" : "") + (pinned.has(n.node) ? ", pinned" : "")} aria-pressed={selected === n.node}
            className={`cnode cnode-${n.kind}${pinned.has(n.node) ? " pinned" : ""}${selected === n.node ? " selected" : ""}${target === n.node ? " target" : ""}`}
            onClick={() => onSelect?.(n)} onKeyDown={key(n)}
            onMouseEnter={() => setHover(n)} onMouseLeave={() => setHover(null)} onFocus={() => setHover(n)}
            onBlur={() => setHover(null)}>
            {shape(n)}
            {n.kind === "logit" && <text y={3} textAnchor="middle" className="logit-label">{JSON.stringify(n.token ?? "").slice(1, -1).slice(0, 7)}</text>}
          </g>
        ))}
      </svg>
      {hover && <NodeTip node={hover} x={hover.x} y={hover.y} />}
    </div>
  );
}
