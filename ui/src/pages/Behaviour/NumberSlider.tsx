/**
 * The numeric fields of a removal request with the bounds the server validates (RemoveBehaviourRequest and
 * BudgetIn in server/schemas/behaviours.py; BehaviourPage.test.tsx checks them against ui/openapi.json), and a
 * slider + number input for each.
 */
export interface NumberSpec {
  /** smallest value the server takes (or, with exclusiveMin, the bound it must stay above) */
  min: number;
  max: number;
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
  integer: boolean;
  /** the slider moves on a log scale (wide ranges) */
  log?: boolean;
  /** where the slider stops when the bound itself is excluded or too wide to slide over usefully */
  sliderMin?: number;
  sliderMax?: number;
}

export const BOUNDS = {
  max_evaluations: { min: 1, max: 10_000, integer: true, log: true },
  max_features: { min: 1, max: 4096, integer: true, log: true },
  "budget.max_kl": { min: 0, max: 100, exclusiveMin: true, integer: false, log: true, sliderMin: 1e-4 },
  "budget.max_target_change": { min: 0, max: 1, exclusiveMin: true, integer: false, log: true, sliderMin: 1e-3 },
  held_out_fraction: { min: 0, max: 1, exclusiveMin: true, exclusiveMax: true, integer: false, sliderMin: 0.05, sliderMax: 0.95 },
  search_margin: { min: 0, max: 1, exclusiveMin: true, integer: false, sliderMin: 0.05 },
  seed: { min: 0, max: 2 ** 31 - 1, integer: true, sliderMax: 100 },
  train_tokens: { min: 1024, max: 100_000_000, integer: true, log: true },
  train_d_sae: { min: 1, max: 1_048_576, integer: true, log: true, sliderMin: 16, sliderMax: 65_536 },
  train_k: { min: 1, max: 4096, integer: true, log: true, sliderMax: 512 },
} satisfies Record<string, NumberSpec>;

const STEPS = 1000;

function ends(spec: NumberSpec): [number, number] {
  return [spec.sliderMin ?? spec.min, spec.sliderMax ?? spec.max];
}

/** Slider position (0..STEPS) of a value. */
export function toSlider(spec: NumberSpec, v: number): number {
  const [lo, hi] = ends(spec);
  const c = Math.min(hi, Math.max(lo, v));
  const t = spec.log ? Math.log(c / lo) / Math.log(hi / lo) : (c - lo) / (hi - lo);
  return Math.round(t * STEPS);
}

/** The value at a slider position, rounded to an integer or 3 significant digits. */
export function fromSlider(spec: NumberSpec, pos: number): number {
  const [lo, hi] = ends(spec);
  const t = pos / STEPS;
  const v = spec.log ? lo * (hi / lo) ** t : lo + t * (hi - lo);
  return spec.integer ? Math.round(v) : Number(v.toPrecision(3));
}

/** Why `v` is outside the server's bounds (null when inside). */
export function outOfBounds(spec: NumberSpec, v: number): string | null {
  if (!Number.isFinite(v)) return "a number is needed";
  if (spec.integer && !Number.isInteger(v)) return "a whole number is needed";
  if (spec.exclusiveMin ? v <= spec.min : v < spec.min) return `must be ${spec.exclusiveMin ? "above" : "at least"} ${spec.min}`;
  if (spec.exclusiveMax ? v >= spec.max : v > spec.max) return `must be ${spec.exclusiveMax ? "below" : "at most"} ${spec.max}`;
  return null;
}

export function NumberSlider({ id, label, spec, value, onChange, hint }: {
  id: string;
  label: string;
  spec: NumberSpec;
  value: number;
  onChange: (v: number) => void;
  hint?: string;
}) {
  const problem = outOfBounds(spec, value);
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <div className="row">
        <input type="range" aria-label={`${label} slider`} min={0} max={STEPS} step={1} value={toSlider(spec, value)}
          onChange={(e) => onChange(fromSlider(spec, Number(e.target.value)))} />
        <input id={id} className="num" type="number" value={Number.isFinite(value) ? value : ""}
          step={spec.integer ? 1 : "any"} aria-invalid={problem != null} aria-describedby={`${id}-hint`}
          onChange={(e) => onChange(e.target.value === "" ? NaN : Number(e.target.value))} />
      </div>
      <span id={`${id}-hint`} className={problem ? "small bad" : "muted small"}>
        {problem ? `${label} ${problem}` : `${hint ? `${hint}; ` : ""}${spec.exclusiveMin ? "(" : "["}${spec.min}, ${spec.max}${spec.exclusiveMax ? ")" : "]"}`}
      </span>
    </div>
  );
}
