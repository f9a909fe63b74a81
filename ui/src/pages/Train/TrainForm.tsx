import { useRef, useState } from "react";
import { api } from "../../api/endpoints";
import { useAction, useAsync } from "../../api/useAsync";
import type { Architecture, HookKind, TrainingRequest } from "../../api/types";
import { ErrorMessage } from "../../components/Status";

const HOOKS: HookKind[] = ["resid_post", "resid_pre", "mlp_out", "attn_out"];
const ARCHS: Architecture[] = ["topk", "batchtopk", "jumprelu", "standard"];

/** Start a training run (POST /api/training); corpus upload via POST /api/corpora. */
export function TrainForm({ nLayers, onStarted }: { nLayers: number | null; onStarted: (runId: string) => void }) {
  const corpora = useAsync(() => api.listCorpora(), []);
  const start = useAction();
  const upload = useAction();
  const fileRef = useRef<HTMLInputElement>(null);
  const [f, setF] = useState<TrainingRequest>({
    layer: 6, hook: "resid_post", architecture: "topk", d_sae: 4608, k: 32, l1_coefficient: 5, n_tokens: 200_000, corpus: null,
  });
  const set = <K extends keyof TrainingRequest>(k: K, v: TrainingRequest[K]) => setF((p) => ({ ...p, [k]: v }));
  const usesK = f.architecture === "topk" || f.architecture === "batchtopk";

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const body: TrainingRequest = {
      ...f,
      k: usesK ? f.k : null,
      l1_coefficient: f.architecture === "standard" ? f.l1_coefficient : null,
    };
    const res = await start.run(() => api.startTraining(body));
    if (res) onStarted(res.run_id);
  };
  const onUpload = async () => {
    const file = fileRef.current?.files?.[0];
    if (!file) return;
    const c = await upload.run(() => api.uploadCorpus(file));
    if (c) {
      corpora.reload();
      set("corpus", c.name);
      if (fileRef.current) fileRef.current.value = "";
    }
  };

  return (
    <form className="card form-grid" onSubmit={submit} aria-label="Train an SAE">
      <h2>New training run</h2>
      <div className="field">
        <label htmlFor="t-layer">Layer{nLayers != null ? ` (0–${nLayers - 1})` : ""}</label>
        <input id="t-layer" type="number" min={0} max={nLayers != null ? nLayers - 1 : undefined} value={f.layer}
          onChange={(e) => set("layer", Number(e.target.value))} required />
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
        <input id="t-dsae" type="number" min={1} value={f.d_sae} onChange={(e) => set("d_sae", Number(e.target.value))} required />
      </div>
      {usesK ? (
        <div className="field">
          <label htmlFor="t-k">k</label>
          <input id="t-k" type="number" min={1} value={f.k ?? ""} onChange={(e) => set("k", Number(e.target.value))} required />
        </div>
      ) : f.architecture === "standard" ? (
        <div className="field">
          <label htmlFor="t-l1">L1 coefficient</label>
          <input id="t-l1" type="number" min={0} step="any" value={f.l1_coefficient ?? ""}
            onChange={(e) => set("l1_coefficient", Number(e.target.value))} required />
        </div>
      ) : null}
      <div className="field">
        <label htmlFor="t-tokens">Training tokens</label>
        <input id="t-tokens" type="number" min={1} step={1000} value={f.n_tokens}
          onChange={(e) => set("n_tokens", Number(e.target.value))} required />
      </div>
      <div className="field">
        <label htmlFor="t-corpus">Corpus</label>
        <select id="t-corpus" value={f.corpus ?? ""} onChange={(e) => set("corpus", e.target.value || null)}>
          <option value="">built-in default</option>
          {(corpora.data ?? []).map((c) => (
            <option key={c.name} value={c.name}>
              {c.name}{c.n_tokens != null ? ` (${c.n_tokens.toLocaleString()} tokens)` : ""}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="t-upload">Upload corpus (.txt, .jsonl, .parquet)</label>
        <span className="row">
          <input id="t-upload" ref={fileRef} type="file" accept=".txt,.jsonl,.parquet" />
          <button type="button" onClick={onUpload} disabled={upload.busy}>
            {upload.busy ? "Uploading…" : "Upload"}
          </button>
        </span>
      </div>
      <ErrorMessage error={corpora.error ?? upload.error} />
      <button type="submit" disabled={start.busy}>{start.busy ? "Starting…" : "Start training"}</button>
      <ErrorMessage error={start.error} />
    </form>
  );
}
