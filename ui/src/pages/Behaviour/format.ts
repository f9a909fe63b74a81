import type { BehaviourEdit } from "../../api/types";

/** A probability, KL or ratio: 3 decimals, or 2 significant digits when smaller than 0.001. */
export function num(x: number | null | undefined): string {
  if (x == null || !Number.isFinite(x)) return "—";
  if (x === 0 || Math.abs(x) >= 0.001) return x.toFixed(3);
  return x.toExponential(1);
}

/** The relative drop from `before` to `after`, e.g. "−93%" (empty when before is 0). */
export function drop(before: number, after: number): string {
  if (!(before > 0)) return "";
  const pct = Math.round((100 * (after - before)) / before);
  return `${pct <= 0 ? "−" : "+"}${Math.abs(pct)}%`;
}

/** One edit in a few characters: "L6 ablate 1 ×3". */
export function editSummary(e: BehaviourEdit): string {
  return `L${e.layer} ${e.mode} ${Number(e.strength.toPrecision(3))} ×${e.features.length}`;
}
