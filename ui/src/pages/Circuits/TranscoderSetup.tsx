import { useState } from "react";
import { errorText } from "../../api/errors";
import { useImportTranscoders, useTrainTranscoders } from "../../api/mutations";
import { ErrorMessage } from "../../components/Status";
import { useServerMessages } from "../../ws/context";

/** Train a transcoder set for the loaded model (every layer) or import a zip; `hasSets`: the model has one already. */
export function TranscoderSetup({ nLayers, hasSets = false }: { nLayers: number | null; hasSets?: boolean }) {
  const train = useTrainTranscoders();
  const imp = useImportTranscoders();
  const [dTc, setDTc] = useState(2304);
  const [k, setK] = useState(32);
  const [tokens, setTokens] = useState(200_000);
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<{ tokens: number; total: number; fvu: number | null } | null>(null);
  const runId = train.data?.run_id;
  useServerMessages("training_progress", (m) => {
    if (m.run_id === runId) setProgress({ tokens: m.tokens, total: m.total_tokens, fvu: m.fvu ?? null });
  });
  const pct = progress && progress.total ? Math.round((100 * progress.tokens) / progress.total) : 0;
  return (
    <section className="card" aria-labelledby="tc-h">
      <h2 id="tc-h">Transcoders</h2>
      <p className="small">Circuits are traced over transcoders: one per layer, each reading the MLP's input and
        predicting its output. {hasSets ? "Train or import another set for" : "There is none yet for"} the loaded
        model{nLayers ? ` (${nLayers} layers)` : ""}.</p>
      <form className="form-grid" aria-label="Train transcoders" onSubmit={(e) => {
        e.preventDefault();
        train.mutate({ all: true, d_tc: dTc, k, total_tokens: tokens });
      }}>
        <div className="field"><label htmlFor="tc-dtc">Latents per layer</label>
          <input id="tc-dtc" className="num" type="number" min={1} value={dTc} onChange={(e) => setDTc(Number(e.target.value))} /></div>
        <div className="field"><label htmlFor="tc-k">k (active per token)</label>
          <input id="tc-k" className="num" type="number" min={1} value={k} onChange={(e) => setK(Number(e.target.value))} /></div>
        <div className="field"><label htmlFor="tc-tokens">Training tokens</label>
          <input id="tc-tokens" type="number" min={1} value={tokens} onChange={(e) => setTokens(Number(e.target.value))} /></div>
        <button type="submit" disabled={train.isPending || !!runId}>Train transcoders (all layers)</button>
        <ErrorMessage error={errorText(train.error)} />
      </form>
      {runId && (
        <div className="progress" role="progressbar" aria-label="Transcoder training progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
          <div className="progress-fill" style={{ width: `${pct}%` }} />
        </div>
      )}
      {progress?.fvu != null && <p className="small muted">FVU of the MLP outputs (training batch): {progress.fvu.toFixed(3)}</p>}
      <form className="row" aria-label="Import transcoders" onSubmit={(e) => {
        e.preventDefault();
        if (file) imp.mutate(file);
      }}>
        <label htmlFor="tc-file">Import (.zip: circuit-tracer or SAELens transcoders)</label>
        <input id="tc-file" type="file" accept=".zip" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        <button type="submit" disabled={!file || imp.isPending}>Import</button>
      </form>
      <ErrorMessage error={errorText(imp.error)} />
    </section>
  );
}
