import * as d3 from "d3";
import type { FeatureMapData } from "../../api/types";

/** Pixel margin around the points. */
export const MARGIN = 12;

/** Colour of a cluster: d3's categorical palettes, repeated beyond their length. */
const PALETTE = [...d3.schemeTableau10, ...d3.schemeSet3, ...d3.schemePaired];
export function clusterColor(id: number): string {
  return PALETTE[((id % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

export interface MapScales {
  x: d3.ScaleLinear<number, number>;
  y: d3.ScaleLinear<number, number>;
}

/** Layout coordinates -> canvas pixels for a `width` x `height` canvas (equal units on both axes, y up). */
export function makeScales(points: FeatureMapData["points"], width: number, height: number): MapScales {
  const [x0, x1] = d3.extent(points.x) as [number, number];
  const [y0, y1] = d3.extent(points.y) as [number, number];
  const spanX = Math.max(x1 - x0, 1e-9);
  const spanY = Math.max(y1 - y0, 1e-9);
  const unit = Math.min((width - 2 * MARGIN) / spanX, (height - 2 * MARGIN) / spanY);
  const ox = (width - unit * spanX) / 2;
  const oy = (height - unit * spanY) / 2;
  return {
    x: d3.scaleLinear().domain([x0, x1]).range([ox, ox + unit * spanX]),
    y: d3.scaleLinear().domain([y0, y1]).range([height - oy, oy]),
  };
}

/** The point rows (indices into the columns) of each cluster, in point order. */
export function rowsByCluster(points: FeatureMapData["points"]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  points.cluster.forEach((c, i) => {
    const rows = out.get(c);
    if (rows) rows.push(i);
    else out.set(c, [i]);
  });
  return out;
}

/** Rows whose label contains `q` (case-insensitive); null when the query is empty. */
export function matchingRows(points: FeatureMapData["points"], q: string): Set<number> | null {
  const needle = q.trim().toLowerCase();
  if (!needle) return null;
  const out = new Set<number>();
  points.label.forEach((l, i) => {
    if (l && l.toLowerCase().includes(needle)) out.add(i);
  });
  return out;
}
