import { useState } from "react";
import { useSearchParams } from "react-router";
import { errorText } from "../../api/errors";
import { useContrast, useContrastPatch } from "../../api/mutations";
import type { ContrastPosition, ContrastResponse, Patch, PatchMode, StrengthUnit } from "../../api/types";
import { SaePicker } from "../../components/SaePicker";
import { ErrorMessage } from "../../components/Status";
import { Link } from "react-router";
import { DEFAULT_STRENGTH, ModeSelect, UNIT_MODES, UnitSelect, defaultUnit } from "../PatchConsole/PatchForm";
import { ContrastResults } from "./ContrastResults";
import { EffectCheck } from "./EffectCheck";

/** A file's text (FileReader: works in every browser and in jsdom). */
function readText(f: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result ?? ""));
    r.onerror = () => reject(r.error);
    r.readAsText(f);
  });
}

const lines = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean);

function SetInput({ id, label, value, onChange }: { id: string; label: string; value: string; onChange: (v: string) => void }) {
  return (
    <div className="field grow">
      <label htmlFor={id}>{label} (one prompt per line)</label>
      <textarea id={id} rows={6} value={value} onChange={(e) => onChange(e.target.value)} />
      <label htmlFor={`${id}-file`} className="small">…or load a .txt file</label>
      <input id={`${id}-file`} type="file" accept=".txt" onChange={async (e) => {
        const f = e.target.files?.[0];
        if (f) onChange(await readText(f));
      }} />
    </div>
  );
}

export function ContrastPage() {
  const [params] = useSearchParams();
  const [saeId, setSaeId] = useState<string | null>(params.get("sae"));
  const [pos, setPos] = useState("");
  const [neg, setNeg] = useState("");
  const [position, setPosition] = useState<ContrastPosition>("max");
  const [topN, setTopN] = useState(20);
  const [res, setRes] = useState<ContrastResponse | null>(null);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [mode, setMode] = useState<PatchMode>("ablate");
  const [strength, setStrength] = useState(DEFAULT_STRENGTH.ablate);
  const [unit, setUnit] = useState<StrengthUnit>("absolute");
  const [patch, setPatch] = useState<Patch | null>(null);
  const run = useContrast();
  const create = useContrastPatch();

  return (
    <div className="page contrast-page">
      <h1>Contrast</h1>
      <form className="card" aria-label="Contrast two prompt sets" onSubmit={(e) => {
        e.preventDefault();
        const body = { positive: lines(pos), negative: lines(neg), position, top_n: topN };
        run.mutate({ saeId: saeId!, body }, {
          onSuccess: (r) => {
            setRes(r);
            setSelected(new Set());
            setPatch(null);
          },
        });
      }}>
        <SaePicker id="contrast-sae" value={saeId} onChange={setSaeId} />
        <div className="two-col">
          <SetInput id="pos-set" label="Positive set" value={pos} onChange={setPos} />
          <SetInput id="neg-set" label="Negative set" value={neg} onChange={setNeg} />
        </div>
        <div className="row">
          <label htmlFor="c-position">Position</label>
          <select id="c-position" value={position} onChange={(e) => setPosition(e.target.value as ContrastPosition)}>
            <option value="max">max over tokens</option>
            <option value="last">last token</option>
            <option value="all">all tokens</option>
          </select>
          <label htmlFor="c-topn">Top N</label>
          <input id="c-topn" type="number" min={1} max={500} className="num" value={topN} onChange={(e) => setTopN(Number(e.target.value))} />
          <button type="submit" disabled={run.isPending || !saeId || !lines(pos).length || !lines(neg).length}>
            {run.isPending ? "Contrasting…" : "Contrast"}
          </button>
        </div>
        <ErrorMessage error={errorText(run.error)} />
      </form>
      {res && saeId && (
        <section className="card" aria-labelledby="ranked-h">
          <h2 id="ranked-h">Separating features</h2>
          <p className="muted small">
            {res.n_positive} positive vs {res.n_negative} negative texts at {res.hook_name}; ranked by how well each
            feature separates them. Tick features, pick a mode, then create one patch over all of them.
          </p>
          <ContrastResults saeId={saeId} features={res.features} selected={selected} onToggle={(i, on) => {
            const s = new Set(selected);
            if (on) s.add(i); else s.delete(i);
            setSelected(s);
          }} />
          <div className="row">
            <label htmlFor="c-mode">Mode</label>
            <ModeSelect id="c-mode" mode={mode} onMode={(m) => {
              setMode(m);
              setUnit(defaultUnit(m));
            }} onStrength={setStrength} />
            <label htmlFor="c-strength">Strength</label>
            <input id="c-strength" type="number" step="any" className="num" value={strength}
              onChange={(e) => setStrength(Number(e.target.value))} />
            {UNIT_MODES.has(mode) && (
              <>
                <label htmlFor="c-unit">Unit</label>
                <UnitSelect id="c-unit" unit={unit} onUnit={setUnit} />
              </>
            )}
            <button type="button" onClick={() => setSelected(new Set(res.features.filter((f) => f.mean_diff > 0).map((f) => f.index)))}>
              Select all with positive difference
            </button>
            <button type="button" disabled={create.isPending || selected.size === 0} onClick={() => {
              const features = res.features.map((f) => f.index).filter((i) => selected.has(i));
              const body = {
                features, mode, strength, name: `contrast ${mode} ×${features.length}`,
                ...(UNIT_MODES.has(mode) ? { strength_unit: unit } : {}),
              };
              create.mutate({ saeId, body }, { onSuccess: setPatch });
            }}>{create.isPending ? "Creating…" : `Create patch from selection (${selected.size})`}</button>
          </div>
          <ErrorMessage error={errorText(create.error)} />
          {patch && (
            <p className="muted small" data-testid="contrast-patch-note">
              Created <strong>{patch.name}</strong> switched off: the effect check below applies it by itself; tick it in
              the <Link to="/patches">Patch console</Link> to apply it to live results there.
            </p>
          )}
        </section>
      )}
      {patch && <EffectCheck key={patch.id} patch={patch} positive={lines(pos)} negative={lines(neg)} />}
    </div>
  );
}
