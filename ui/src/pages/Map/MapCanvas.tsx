import * as d3 from "d3";
import { useEffect, useMemo, useRef, useState } from "react";
import type { FeatureMapData } from "../../api/types";
import { clusterColor, makeScales, rowsByCluster } from "./geometry";

const R = 2.5; // point half-size in CSS pixels
const HOVER_PX = 8; // the nearest point within this distance is hovered

/**
 * Every feature of the map as a small square on a canvas (thousands of points stay responsive: one fill per
 * point, no DOM node per point), coloured by cluster. Hidden clusters are not drawn; when `matches` is given,
 * the matching points are drawn large on top and the others faded. Hover finds the nearest point with a
 * quadtree and shows its label; a click calls `onPick` with the feature index.
 */
export function MapCanvas({
  data,
  hidden,
  matches,
  onPick,
  width = 880,
  height = 600,
}: {
  data: FeatureMapData;
  hidden: Set<number>;
  matches: Set<number> | null;
  onPick: (index: number) => void;
  width?: number;
  height?: number;
}) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<number | null>(null);
  const pts = data.points;
  const scales = useMemo(() => makeScales(pts, width, height), [pts, width, height]);
  const byCluster = useMemo(() => rowsByCluster(pts), [pts]);
  const tree = useMemo(
    () =>
      d3
        .quadtree<number>()
        .x((i) => scales.x(pts.x[i]))
        .y((i) => scales.y(pts.y[i]))
        .addAll(pts.index.map((_, i) => i).filter((i) => !hidden.has(pts.cluster[i]))),
    [pts, scales, hidden],
  );

  useEffect(() => {
    const canvas = ref.current;
    const ctx = canvas?.getContext("2d");
    if (!canvas || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr;
    canvas.height = height * dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    for (const [c, rows] of byCluster) {
      if (hidden.has(c)) continue;
      ctx.fillStyle = clusterColor(c);
      ctx.globalAlpha = matches == null ? 0.8 : 0.15;
      for (const i of rows) if (matches == null || !matches.has(i)) ctx.fillRect(scales.x(pts.x[i]) - R, scales.y(pts.y[i]) - R, 2 * R, 2 * R);
    }
    if (matches != null) {
      ctx.globalAlpha = 1;
      for (const [c, rows] of byCluster) {
        if (hidden.has(c)) continue;
        ctx.fillStyle = clusterColor(c);
        for (const i of rows) if (matches.has(i)) ctx.fillRect(scales.x(pts.x[i]) - 2 * R, scales.y(pts.y[i]) - 2 * R, 4 * R, 4 * R);
      }
    }
    if (hover != null && !hidden.has(pts.cluster[hover])) {
      ctx.globalAlpha = 1;
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(scales.x(pts.x[hover]) - 3 * R, scales.y(pts.y[hover]) - 3 * R, 6 * R, 6 * R);
    }
  }, [pts, scales, byCluster, hidden, matches, hover, width, height]);

  const pick = (e: React.MouseEvent<HTMLCanvasElement>): number | null => {
    const rect = e.currentTarget.getBoundingClientRect();
    const found = tree.find(e.clientX - rect.left, e.clientY - rect.top, HOVER_PX);
    return found ?? null;
  };

  const h = hover != null ? { index: pts.index[hover], label: pts.label[hover], cluster: pts.cluster[hover], density: pts.density[hover] } : null;
  return (
    <div className="map-canvas" style={{ position: "relative", width, height }}>
      <canvas
        ref={ref}
        data-testid="map-canvas"
        role="img"
        aria-label={`Feature map: ${pts.index.length.toLocaleString()} features in ${data.clusters.length} clusters`}
        style={{ width, height, cursor: hover != null ? "pointer" : "default", border: "1px solid var(--line)", borderRadius: 6 }}
        onMouseMove={(e) => setHover(pick(e))}
        onMouseLeave={() => setHover(null)}
        onClick={(e) => {
          const i = pick(e);
          if (i != null) onPick(pts.index[i]);
        }}
      />
      {h && hover != null && (
        <div
          className="map-tooltip card"
          data-testid="map-tooltip"
          style={{ position: "absolute", left: Math.min(scales.x(pts.x[hover]) + 10, width - 220), top: Math.max(scales.y(pts.y[hover]) - 10, 0), pointerEvents: "none", padding: "0.3rem 0.5rem", maxWidth: 220 }}
        >
          <strong>#{h.index}</strong> {h.label ?? <span className="muted">(no label)</span>}
          <div className="muted small">
            cluster {h.cluster}
            {h.density != null && ` · density ${h.density.toPrecision(2)}`}
          </div>
        </div>
      )}
    </div>
  );
}
