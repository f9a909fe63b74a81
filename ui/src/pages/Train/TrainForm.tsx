import { useState } from "react";
import { errorText } from "../../api/errors";
import { useStartTraining } from "../../api/mutations";
import { useCorpora } from "../../api/queries";
import type { Architecture, HookKind, TrainingRequest } from "../../api/types";
import { ErrorMessage } from "../../components/Status";
import { parseLayers, parseNumList, sweepGrid } from "./trainData";

const HOOKS: HookKind[] = ["resid_post", "resid_pre", "mlp_out", "attn_out"];
const ARCHS: Architecture[] = ["topk", "batchtopk", "standard"];

interface FormState {
  layers: string;
  hook: HookKind;
  architecture: Architecture;
  d_sae: number;
  k: number;
  l1_coefficient: number;
  total_tokens: number;
  batch_size: number;
  corpus: string;
  /** "" = repeat as needed, else the passes allowed */
  epochs: string;
  sweep: boolean;
  sweepArchs: Architecture[];
  sweepWidths: string;
  sweepKs: string;
  sweepL1s: string;
}

/**
 * Start a training run (POST /api/training): one SAE per layer, or with "Sweep" a grid of SAEs per layer
 * (architectures x widths x k values for topk/batchtopk, x L1 weights for standard). The member count is shown
 * before starting. `corpus` (when set) selects a corpus, e.g. one just uploaded.
 */
export function TrainForm({ nLayers, onStarted, corpus }: { nLayers: number | null; onStarted: (runId: string) => void; corpus?: string }) {
  const corpora = useCorpora();
  const start = useStartTraining();
  const [f, setF] = useState<FormState>({
    layers: "6", hook: "resid_post", architecture: "topk", d_sae: 4608, k: 32, l1_coefficient: 5,
    total_tokens: 200_000, batch_size: 4096, corpus: "default", epochs: "",
    sweep: false, sweepArchs: ["topk"], sweepWidths: "2304, 4608", sweepKs: "16, 32", sweepL1s: "5",
  });
  const [pickedCorpus, setPickedCorpus] = useState<string | undefined>(corpus);
  if (corpus !== pickedCorpus) {
    // a corpus chosen outside the form (just uploaded) becomes the form's corpus
    setPickedCorpus(corpus);
    if (corpus) setF((p) => ({ ...p, corpus }));
  }
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => setF((p) => ({ ...p, [k]: v }));
  const usesK = f.architecture === "topk" || f.architecture === "batchtopk";
  const layerSpec = parseLayers(f.layers);
  const layerList = layerSpec ? ("layer" in layerSpec ? [layerSpec.layer] : layerSpec.layers) : [];
  const widths = parseNumList(f.sweepWidths);
  const ks = parseNumList(f.sweepKs);
  const l1s = parseNumList(f.sweepL1s, false);
  const sweepArchs = f.sweepArchs;
  const grid = f.sweep
    ? sweepGrid(layerList, sweepArchs, widths?.length ? widths : [f.d_sae], ks?.length ? ks : [f.k], l1s?.length ? l1s : [f.l1_coefficient])
    : null;
  const sweepError = !f.sweep ? null
    : sweepArchs.length === 0 ? "Pick at least one architecture."
    : !widths || !ks || !l1s ? "Give the lists as numbers separated by commas."
    : grid?.error ?? null;
  const nMembers = grid ? grid.members.length : layerList.length;
  const epochs = f.epochs.trim() === "" ? null : Number(f.epochs);
  const epochsOk = epochs === null || (Number.isInteger(epochs) && epochs >= 1);

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    if (!layerSpec || sweepError || !epochsOk) return;
    const body: TrainingRequest = {
      ...layerSpec, hook: f.hook, architecture: f.sweep ? sweepArchs[0] : f.architecture, d_sae: f.d_sae,
      total_tokens: f.total_tokens, batch_size: f.batch_size, corpus: f.corpus, epochs,
      ...(f.sweep
        ? {
            k: f.k, l1_coefficient: f.l1_coefficient,
            sweep: {
              architectures: sweepArchs,
              d_sae: widths?.length ? widths : null,
              k: ks?.length ? ks : null,
              l1_coefficient: l1s?.length ? l1s : null,
            },
          }
        : usesK ? { k: f.k } : { l1_coefficient: f.l1_coefficient }),
    };
    start.mutate(body, { onSuccess: (res) => onStarted(res.run_id) });
  };
  const toggleArch = (a: Architecture) =>
    set("sweepArchs", sweepArchs.includes(a) ? sweepArchs.filter((x) => x !== a) : ARCHS.filter((x) => x === a || sweepArchs.includes(x)));

  const num = (k: "d_sae" | "k" | "l1_coefficient" | "total_tokens" | "batch_size") =>
    (e: React.ChangeEvent<HTMLInputElement>) => set(k, Number(e.target.value));

  return (
    <form className="card form-grid" onSubmit={submit} aria-label="Train an SAE">
      <h2>New training run</h2>
      <div className="field">
        <label htmlFor="t-layer">Layers{nLayers != null ? ` (0–${nLayers - 1}; e.g. 3 or 0,1,2)` : " (e.g. 3 or 0,1,2)"}</label>
        <input id="t-layer" value={f.layers} onChange={(e) => set("layers", e.target.value)} required
          aria-invalid={!layerSpec} inputMode="numeric" />
        {!layerSpec && <span className="bad small">Give layer numbers like 3, 0,1,2 or 0-2.</span>}
      </div>
      <div className="field">
        <label htmlFor="t-hook">Hook</label>
        <select id="t-hook" value={f.hook} onChange={(e) => set("hook", e.target.value as HookKind)}>
          {HOOKS.map((h) => <option key={h} value={h}>{h}</option>)}
        </select>
      </div>
      <div className="field">
        <label htmlFor="t-arch">Architecture</label>
        <select id="t-arch" value={f.architecture} onChange={(e) => set("architecture", e.target.value as Architecture)}>
          {ARCHS.map((a) => <option key={a} value={a}>{a}</option>)}
        </select>
      </div>
      <div className="field">
        <label htmlFor="t-dsae">d_sae</label>
        <input id="t-dsae" type="number" min={1} value={f.d_sae} onChange={num("d_sae")} required />
      </div>
      {usesK ? (
        <div className="field">
          <label htmlFor="t-k">k</label>
          <input id="t-k" type="number" min={1} value={f.k} onChange={num("k")} required />
        </div>
      ) : (
        <div className="field">
          <label htmlFor="t-l1">L1 coefficient</label>
          <input id="t-l1" type="number" min={0} step="any" value={f.l1_coefficient} onChange={num("l1_coefficient")} required />
        </div>
      )}
      <div className="field">
        <label htmlFor="t-tokens">Training tokens</label>
        <input id="t-tokens" type="number" min={1} step={1} value={f.total_tokens} onChange={num("total_tokens")} required />
      </div>
      <div className="field">
        <label htmlFor="t-batch">Batch size</label>
        <input id="t-batch" type="number" min={1} value={f.batch_size} onChange={num("batch_size")} required />
      </div>
      <div className="field">
        <label htmlFor="t-corpus">Corpus</label>
        <select id="t-corpus" value={f.corpus} onChange={(e) => set("corpus", e.target.value)}>
          {!(corpora.data ?? []).some((c) => c.id === "default") && <option value="default">built-in default</option>}
          {(corpora.data ?? []).map((c) => (
            <option key={c.id} value={c.id} disabled={c.status === "failed"}>
              {c.name}{c.n_tokens != null ? ` (${c.n_tokens.toLocaleString()} tokens)` : ""}
              {c.status === "counting" ? " (counting…)" : c.status === "failed" ? " (failed)" : ""}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="t-epochs">Epochs (passes allowed; blank: repeat as needed)</label>
        <input id="t-epochs" type="number" min={1} step={1} value={f.epochs} onChange={(e) => set("epochs", e.target.value)}
          aria-invalid={!epochsOk} placeholder="as needed" />
      </div>
      <fieldset className="field sweep" aria-label="Sweep">
        <label>
          <input type="checkbox" checked={f.sweep} onChange={(e) => set("sweep", e.target.checked)} /> Sweep: train a grid of SAEs per layer
        </label>
        {f.sweep && (
          <>
            <span role="group" aria-label="Sweep architectures" className="row">
              {ARCHS.map((a) => (
                <label key={a}>
                  <input type="checkbox" checked={sweepArchs.includes(a)} onChange={() => toggleArch(a)} /> {a}
                </label>
              ))}
            </span>
            <label htmlFor="s-widths">Widths (d_sae)</label>
            <input id="s-widths" value={f.sweepWidths} onChange={(e) => set("sweepWidths", e.target.value)} placeholder="2304, 4608" />
            <label htmlFor="s-ks">k values (topk, batchtopk)</label>
            <input id="s-ks" value={f.sweepKs} onChange={(e) => set("sweepKs", e.target.value)} placeholder="16, 32" />
            <label htmlFor="s-l1s">L1 coefficients (standard)</label>
            <input id="s-l1s" value={f.sweepL1s} onChange={(e) => set("sweepL1s", e.target.value)} placeholder="1, 5" />
          </>
        )}
      </fieldset>
      <p data-testid="member-count" className={sweepError ? "bad small" : "small"}>
        {sweepError ?? `${nMembers} SAE${nMembers === 1 ? "" : "s"} (${layerList.length} layer${layerList.length === 1 ? "" : "s"}${grid ? ` x ${nMembers / Math.max(1, layerList.length)} grid points` : ""})`}
      </p>
      <ErrorMessage error={errorText(corpora.error)} />
      <button type="submit" disabled={start.isPending || !layerSpec || !!sweepError || !epochsOk}>{start.isPending ? "Starting…" : "Start training"}</button>
      <ErrorMessage error={errorText(start.error)} />
    </form>
  );
}
