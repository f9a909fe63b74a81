import { useState } from "react";
import { useSearchParams } from "react-router";
import { api } from "../../api/endpoints";
import { useAction } from "../../api/useAsync";
import type { ContrastRequest, ContrastResponse, Patch, PatchMode } from "../../api/types";
import { SaePicker } from "../../components/SaePicker";
import { ErrorMessage } from "../../components/Status";
import { MODES, DEFAULT_STRENGTH } from "../PatchConsole/PatchForm";
import { ContrastResults } from "./ContrastResults";
import { EffectCheck } from "./EffectCheck";

const lines = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean);

function SetInput({ id, label, value, onChange }: { id: string; label: string; value: string; onChange: (v: string) => void }) {
  return (
    <div className="field grow">
      <label htmlFor={id}>{label} (one prompt per line)</label>
      <textarea id={id} rows={6} value={value} onChange={(e) => onChange(e.target.value)} />
      <label htmlFor={`${id}-file`} className="small">…or load a .txt file</label>
      <input id={`${id}-file`} type="file" accept=".txt" onChange={async (e) => {
        const f = e.target.files?.[0];
        if (f) onChange(await f.text());
      }} />
    </div>
  );
}

export function ContrastPage() {
  const [params] = useSearchParams();
  const [saeId, setSaeId] = useState<string | null>(params.get("sae"));
  const [pos, setPos] = useState("");
  const [neg, setNeg] = useState("");
  const [position, setPosition] = useState<ContrastRequest["position"]>("max");
  const [topN, setTopN] = useState(20);
  const [res, setRes] = useState<ContrastResponse | null>(null);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [mode, setMode] = useState<PatchMode>("ablate");
  const [patch, setPatch] = useState<Patch | null>(null);
  const run = useAction();
  const create = useAction();

  return (
    <div className="page contrast-page">
      <h1>Contrast</h1>
      <form className="card" aria-label="Contrast two prompt sets" onSubmit={async (e) => {
        e.preventDefault();
        const r = await run.run(() => api.contrast(saeId!, { positive: lines(pos), negative: lines(neg), position, top_n: topN }));
        if (r) {
          setRes(r);
          setSelected(new Set());
          setPatch(null);
        }
      }}>
        <SaePicker id="contrast-sae" value={saeId} onChange={setSaeId} />
        <div className="two-col">
          <SetInput id="pos-set" label="Positive set" value={pos} onChange={setPos} />
          <SetInput id="neg-set" label="Negative set" value={neg} onChange={setNeg} />
        </div>
        <div className="row">
          <label htmlFor="c-position">Position</label>
          <select id="c-position" value={position} onChange={(e) => setPosition(e.target.value as ContrastRequest["position"])}>
            <option value="max">max over tokens</option>
            <option value="last">last token</option>
            <option value="all">all tokens</option>
          </select>
          <label htmlFor="c-topn">Top N</label>
          <input id="c-topn" type="number" min={1} max={500} className="num" value={topN} onChange={(e) => setTopN(Number(e.target.value))} />
          <button type="submit" disabled={run.busy || !saeId || !lines(pos).length || !lines(neg).length}>
            {run.busy ? "Contrasting…" : "Contrast"}
          </button>
        </div>
        <ErrorMessage error={run.error} />
      </form>
      {res && saeId && (
        <section className="card" aria-labelledby="ranked-h">
          <h2 id="ranked-h">Separating features</h2>
          <ContrastResults saeId={saeId} features={res.features} selected={selected} onToggle={(i, on) => {
            const s = new Set(selected);
            if (on) s.add(i); else s.delete(i);
            setSelected(s);
          }} />
          <div className="row">
            <label htmlFor="c-mode">Mode</label>
            <select id="c-mode" value={mode} onChange={(e) => setMode(e.target.value as PatchMode)}>
              {MODES.map((m) => <option key={m} value={m}>{m}</option>)}
            </select>
            <button type="button" disabled={create.busy || selected.size === 0} onClick={async () => {
              const p = await create.run(() => api.createPatch({
                sae_id: saeId, features: [...selected], mode, strength: DEFAULT_STRENGTH[mode],
                name: `contrast ${mode} ×${selected.size}`, enabled: true,
              }));
              if (p) setPatch(p);
            }}>{create.busy ? "Creating…" : `Create patch from selection (${selected.size})`}</button>
          </div>
          <ErrorMessage error={create.error} />
        </section>
      )}
      {patch && <EffectCheck patch={patch} positive={lines(pos)} negative={lines(neg)} />}
    </div>
  );
}
