import { useRef, useState } from "react";
import { errorText } from "../../api/errors";
import { useStartTraining, useUploadCorpus } from "../../api/mutations";
import { useCorpora } from "../../api/queries";
import type { Architecture, HookKind, TrainingRequest } from "../../api/types";
import { ErrorMessage } from "../../components/Status";
import { parseLayers } from "./trainData";

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
}

/** Start a training run (POST /api/training); corpus upload via POST /api/corpora. */
export function TrainForm({ nLayers, onStarted }: { nLayers: number | null; onStarted: (runId: string) => void }) {
  const corpora = useCorpora();
  const start = useStartTraining();
  const upload = useUploadCorpus();
  const fileRef = useRef<HTMLInputElement>(null);
  const [f, setF] = useState<FormState>({
    layers: "6", hook: "resid_post", architecture: "topk", d_sae: 4608, k: 32, l1_coefficient: 5,
    total_tokens: 200_000, batch_size: 4096, corpus: "default",
  });
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => setF((p) => ({ ...p, [k]: v }));
  const usesK = f.architecture === "topk" || f.architecture === "batchtopk";
  const layerSpec = parseLayers(f.layers);

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    if (!layerSpec) return;
    const body: TrainingRequest = {
      ...layerSpec, hook: f.hook, architecture: f.architecture, d_sae: f.d_sae, total_tokens: f.total_tokens,
      batch_size: f.batch_size, corpus: f.corpus,
      ...(usesK ? { k: f.k } : { l1_coefficient: f.l1_coefficient }),
    };
    start.mutate(body, { onSuccess: (res) => onStarted(res.run_id) });
  };

  const onUpload = () => {
    const file = fileRef.current?.files?.[0];
    if (!file) return;
    upload.mutate(file, {
      onSuccess: (c) => {
        set("corpus", c.id);
        if (fileRef.current) fileRef.current.value = "";
      },
    });
  };

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
            <option key={c.id} value={c.id}>
              {c.name}{c.n_tokens != null ? ` (${c.n_tokens.toLocaleString()} tokens)` : ""}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="t-upload">Upload corpus (.txt, .jsonl, .parquet)</label>
        <span className="row">
          <input id="t-upload" ref={fileRef} type="file" accept=".txt,.jsonl,.parquet" />
          <button type="button" onClick={onUpload} disabled={upload.isPending}>
            {upload.isPending ? "Uploading…" : "Upload"}
          </button>
        </span>
      </div>
      <ErrorMessage error={errorText(corpora.error ?? upload.error)} />
      <button type="submit" disabled={start.isPending || !layerSpec}>{start.isPending ? "Starting…" : "Start training"}</button>
      <ErrorMessage error={errorText(start.error)} />
    </form>
  );
}
