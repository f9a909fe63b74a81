import { useEffect, useMemo, useRef, useState, type PointerEvent as RPointerEvent } from "react";
import * as d3 from "d3";
import type { EdgeValidation, ProvEdge, ProvNode } from "../../api/types";
import { fmt, useWidth } from "../useWidth";
import { layeredLayout, layoutHeight, prune, pruneByShare, shortLabel, truncate, type Keep } from "./layout";
import { showToken } from "../../tokens/display";

export interface ProvenanceGraphProps {
  nodes: ProvNode[];
  edges: ProvEdge[];
  /** hide edges with |weight| below this */
  threshold?: number;
  /** share of each node's incoming weight to keep, per edge class (pruneByShare); default everything */
  keep?: Keep;
  validation?: EdgeValidation[];
  onSelect?: (node: ProvNode) => void;
  height?: number;
  width?: number;
}

type Tip = { x: number; y: number; text: string[] } | null;
const R = 14;
const DRAG_PX = 3;

const ALL: Keep = { feature: 1, logit: 1 };

/**
 * Feature graph by layer; edge width by |weight|; drag pins a node (double-click unpins); click/Enter opens it;
 * wheel or the buttons zoom, dragging the background pans (d3.zoom, bound in an effect). The graph grows taller with
 * its fullest column so that nodes never overlap; labels are cut short, the full text is in the tooltip.
 */
export function ProvenanceGraph({ nodes, edges, threshold = 0, keep = ALL, validation = [], onSelect, height: minHeight = 460, width }: ProvenanceGraphProps) {
  const [ref, measured] = useWidth<HTMLDivElement>(width ?? 720);
  const w = width ?? measured;
  const [pinned, setPinned] = useState<Record<string, { x: number; y: number }>>({});
  const [tip, setTip] = useState<Tip>(null);
  const drag = useRef<{ id: string; sx: number; sy: number; moved: boolean } | null>(null);
  const svgRef = useRef<SVGSVGElement>(null);
  const [zt, setZt] = useState<d3.ZoomTransform>(d3.zoomIdentity);
  const zoomRef = useRef<d3.ZoomBehavior<SVGSVGElement, unknown> | null>(null);
  const empty = nodes.length === 0;
  const visible = useMemo(() => {
    const byShare = pruneByShare(nodes, edges, keep);
    return prune(byShare.nodes, byShare.edges, threshold);
  }, [nodes, edges, keep, threshold]);
  const height = useMemo(() => layoutHeight(visible.nodes, minHeight), [visible.nodes, minHeight]);

  useEffect(() => {
    const svg = svgRef.current;
    if (!svg) return;
    const z = d3.zoom<SVGSVGElement, unknown>()
      .scaleExtent([0.25, 8])
      .extent([[0, 0], [w, height]])
      // nodes keep their own pointer handling (drag to pin, click to open)
      .filter((ev: Event) => !(ev.target as Element | null)?.closest?.(".node") && !(ev as MouseEvent).button)
      .on("zoom", (ev: d3.D3ZoomEvent<SVGSVGElement, unknown>) => setZt(ev.transform));
    const sel = d3.select(svg);
    sel.call(z).on("dblclick.zoom", null);
    zoomRef.current = z;
    return () => {
      sel.on(".zoom", null);
      zoomRef.current = null;
    };
  }, [empty, w, height]);
  const zoomBy = (k: number | null) => {
    const svg = svgRef.current;
    const z = zoomRef.current;
    if (!svg || !z) return;
    if (k == null) d3.select(svg).call(z.transform, d3.zoomIdentity);
    else d3.select(svg).call(z.scaleBy, k);
  };

  const placed = useMemo(() => layeredLayout(visible.nodes, w, height), [visible.nodes, w, height]);
  const pos = useMemo(() => {
    const m = new Map<string, { x: number; y: number }>();
    for (const p of placed) m.set(p.id, pinned[p.id] ?? { x: p.x, y: p.y });
    return m;
  }, [placed, pinned]);
  const widthScale = useMemo(() => {
    const max = d3.max(edges, (e) => Math.abs(e.weight)) ?? 1;
    return d3.scaleLinear().domain([0, max || 1]).range([0.5, 8]);
  }, [edges]);
  const valKey = useMemo(() => new Map(validation.map((v) => [`${v.source}->${v.target}`, v])), [validation]);
  const layers = useMemo(() => [...new Set(placed.map((p) => p.column))].sort((a, b) => a - b), [placed]);
  const maxLayer = d3.max(placed.filter((p) => p.kind !== "logit"), (p) => p.layer) ?? 0;

  /** pointer position in graph coordinates (under the current zoom) */
  const local = (e: RPointerEvent) => {
    const r = svgRef.current?.getBoundingClientRect();
    const [x, y] = zt.invert([e.clientX - (r?.left ?? 0), e.clientY - (r?.top ?? 0)]);
    return { x, y };
  };
  const onDown = (id: string) => (e: RPointerEvent<SVGGElement>) => {
    (e.currentTarget as Element).setPointerCapture?.(e.pointerId);
    drag.current = { id, sx: e.clientX, sy: e.clientY, moved: false };
  };
  const onMove = (e: RPointerEvent) => {
    const d = drag.current;
    if (!d) return;
    if (!d.moved && Math.hypot(e.clientX - d.sx, e.clientY - d.sy) < DRAG_PX) return;
    d.moved = true;
    const p = local(e);
    setPinned((prev) => ({ ...prev, [d.id]: { x: Math.max(R, Math.min(w - R, p.x)), y: Math.max(R, Math.min(height - R, p.y)) } }));
  };
  const onUp = (n: ProvNode) => () => {
    const d = drag.current;
    drag.current = null;
    if (d && !d.moved) onSelect?.(n);
  };

  if (empty) return <p className="chart-empty">No graph</p>;
  const [tipX, tipY] = tip ? zt.apply([tip.x, tip.y]) : [0, 0];
  return (
    <div className="chart provenance" ref={ref} style={{ position: "relative" }} data-height={height}>
      <div className="row small" role="toolbar" aria-label="Zoom">
        <button type="button" onClick={() => zoomBy(1.25)}>Zoom in</button>
        <button type="button" onClick={() => zoomBy(0.8)}>Zoom out</button>
        <button type="button" onClick={() => zoomBy(null)}>Reset view</button>
        <span className="muted" data-testid="zoom-level">{Math.round(zt.k * 100)}%</span>
        {Object.keys(pinned).length > 0 && (
          <button type="button" onClick={() => setPinned({})}>Unpin all ({Object.keys(pinned).length})</button>
        )}
      </div>
      <svg ref={svgRef} width={w} height={height} role="group" aria-label="Provenance graph" onPointerMove={onMove}
        style={{ cursor: "grab", touchAction: "none" }}>
        <g transform={zt.toString()} data-testid="zoom-layer">
        {layers.map((c) => {
          const p = placed.find((n) => n.column === c)!;
          return (
            <text key={c} x={p.x} y={14} textAnchor="middle" className="layer-label">
              {c > maxLayer ? "logits" : `layer ${c}`}
            </text>
          );
        })}
        {visible.edges.map((e) => {
          const a = pos.get(e.source);
          const b = pos.get(e.target);
          if (!a || !b) return null;
          const v = valKey.get(`${e.source}->${e.target}`);
          const text = [
            `${e.source} → ${e.target}`,
            `weight ${fmt(e.weight)}`,
            ...(e.virtual_weight != null ? [`virtual ${fmt(e.virtual_weight)}`] : []),
            ...(e.attribution != null ? [`attribution ${fmt(e.attribution)}`] : []),
            ...(v ? [`validated: predicted ${fmt(v.predicted)}, actual ${fmt(v.actual)}`] : []),
          ];
          return (
            <line
              key={`${e.source}->${e.target}`}
              data-testid="prov-edge"
              data-source={e.source}
              data-target={e.target}
              x1={a.x} y1={a.y} x2={b.x} y2={b.y}
              strokeWidth={widthScale(Math.abs(e.weight))}
              className={`edge ${e.weight >= 0 ? "edge-pos" : "edge-neg"}${v ? " edge-validated" : ""}`}
              onMouseEnter={() => setTip({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2, text })}
              onMouseLeave={() => setTip(null)}
            />
          );
        })}
        {placed.map((n) => {
          const p = pos.get(n.id)!;
          const name = n.kind === "logit" ? showToken(n.label ?? "") : n.label || `feature ${n.feature}`;
          const text = [name, n.kind === "logit" ? `logit · token ${n.feature}` : `layer ${n.layer} · #${n.feature}`,
            ...(n.activation != null ? [`activation ${fmt(n.activation)}`] : [])];
          return (
            <g
              key={n.id}
              data-testid="prov-node"
              data-id={n.id}
              data-pinned={pinned[n.id] ? "true" : undefined}
              transform={`translate(${p.x},${p.y})`}
              className={`node node-${n.kind ?? "feature"}${pinned[n.id] ? " pinned" : ""}`}
              tabIndex={0}
              role="button"
              aria-label={`${text[0]} (layer ${n.layer}, feature ${n.feature})`}
              onPointerDown={onDown(n.id)}
              onPointerUp={onUp(n)}
              onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && onSelect?.(n)}
              onDoubleClick={() => setPinned(({ [n.id]: _drop, ...rest }) => rest)}
              onMouseEnter={() => setTip({ x: p.x, y: p.y - R, text })}
              onMouseLeave={() => setTip(null)}
            >
              <title>{text.join("\n")}</title>
              <circle r={R} />
              <text y={R + 12} textAnchor="middle" className="node-label" data-testid="prov-node-label">
                {truncate(n.kind === "logit" ? name : n.label ? shortLabel(n.label) : `#${n.feature}`)}
              </text>
            </g>
          );
        })}
        </g>
      </svg>
      {tip && (
        <div className="graph-tip" role="tooltip" style={{ position: "absolute", left: tipX + 8, top: tipY + 8 + 32 }}>
          {tip.text.map((t) => <div key={t}>{t}</div>)}
        </div>
      )}
    </div>
  );
}
