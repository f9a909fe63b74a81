import { useState } from "react";
import { errorText } from "../../api/errors";
import { useCreatePatch } from "../../api/mutations";
import type { PatchMode, StrengthUnit } from "../../api/types";
import { SaePicker } from "../../components/SaePicker";
import { ErrorMessage } from "../../components/Status";

export const MODES: PatchMode[] = ["ablate", "scale", "steer", "clamp"];
/** Defaults in the unit the form starts with: absolute for ablate/scale (fraction, factor), typical activations for
 * steer/clamp (DEFAULT_UNIT). */
export const DEFAULT_STRENGTH: Record<PatchMode, number> = { ablate: 1, scale: 0, steer: 4, clamp: 0 };
/** Modes whose strength can count the features' typical activation (the server's patches/units.py). */
export const UNIT_MODES: ReadonlySet<PatchMode> = new Set(["steer", "clamp"]);
export const defaultUnit = (m: PatchMode): StrengthUnit => (UNIT_MODES.has(m) ? "typical_activation" : "absolute");

/** Unit picker for steer and clamp strengths. */
export function UnitSelect({ id, unit, onUnit }: { id: string; unit: StrengthUnit; onUnit: (u: StrengthUnit) => void }) {
  return (
    <select id={id} value={unit} onChange={(e) => onUnit(e.target.value as StrengthUnit)}>
      <option value="typical_activation">× typical activation</option>
      <option value="absolute">absolute</option>
    </select>
  );
}

/** Patch-mode picker; choosing a mode also resets the strength to that mode's default. */
export function ModeSelect({ id, mode, onMode, onStrength }: {
  id: string; mode: PatchMode; onMode: (m: PatchMode) => void; onStrength: (s: number) => void;
}) {
  return (
    <select id={id} value={mode} onChange={(e) => {
      const m = e.target.value as PatchMode;
      onMode(m);
      onStrength(DEFAULT_STRENGTH[m]);
    }}>
      {MODES.map((m) => <option key={m} value={m}>{m}</option>)}
    </select>
  );
}

/** "3, 17 42" → [3, 17, 42]; throws on anything else so the user sees what was wrong. */
export function parseFeatureList(s: string): number[] {
  const parts = s.split(/[\s,]+/).filter(Boolean);
  const out = parts.map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0) throw new Error(`"${p}" is not a feature index`);
    return n;
  });
  return [...new Set(out)];
}

/** Create a patch (POST /api/patches) on one or several features of an SAE; the cached patch list gains it. */
export function PatchForm({ initialSae, initialFeatures }: { initialSae: string | null; initialFeatures: string }) {
  const [saeId, setSaeId] = useState<string | null>(initialSae);
  const [features, setFeatures] = useState(initialFeatures);
  const [mode, setMode] = useState<PatchMode>("ablate");
  const [strength, setStrength] = useState(DEFAULT_STRENGTH.ablate);
  const [unit, setUnit] = useState<StrengthUnit>("absolute");
  const [name, setName] = useState("");
  const create = useCreatePatch();
  // a feature list that does not parse never reaches the server
  const [inputError, setInputError] = useState<string | null>(null);
  return (
    <form
      className="card form-grid"
      aria-label="Create a patch"
      onSubmit={(e) => {
        e.preventDefault();
        let parsed: number[];
        try {
          parsed = parseFeatureList(features);
        } catch (err) {
          create.reset();
          setInputError(errorText(err));
          return;
        }
        setInputError(null);
        create.mutate({
          sae_id: saeId!, features: parsed, mode, strength, name: name || undefined, enabled: true,
          strength_unit: UNIT_MODES.has(mode) ? unit : "absolute", origin: "patch console",
        });
      }}
    >
      <h2>New patch</h2>
      <SaePicker id="patch-sae" value={saeId} onChange={setSaeId} />
      <div className="field">
        <label htmlFor="patch-features">Features (indices)</label>
        <input id="patch-features" value={features} onChange={(e) => setFeatures(e.target.value)} placeholder="e.g. 12, 873" required />
      </div>
      <div className="field">
        <label htmlFor="patch-mode">Mode</label>
        <ModeSelect id="patch-mode" mode={mode} onMode={(m) => {
          setMode(m);
          setUnit(defaultUnit(m));
        }} onStrength={setStrength} />
      </div>
      <div className="field">
        <label htmlFor="patch-strength">Strength</label>
        <input id="patch-strength" type="number" step="any" value={strength} onChange={(e) => setStrength(Number(e.target.value))} />
      </div>
      {UNIT_MODES.has(mode) && (
        <div className="field">
          <label htmlFor="patch-unit">Unit</label>
          <UnitSelect id="patch-unit" unit={unit} onUnit={setUnit} />
        </div>
      )}
      <div className="field">
        <label htmlFor="patch-name">Name (optional)</label>
        <input id="patch-name" value={name} onChange={(e) => setName(e.target.value)} />
      </div>
      <button type="submit" disabled={create.isPending || !saeId}>{create.isPending ? "Creating…" : "Create patch"}</button>
      <ErrorMessage error={inputError ?? errorText(create.error)} />
    </form>
  );
}
