import { useState } from "react";
import { useSearchParams } from "react-router";
import { errorText } from "../../api/errors";
import { useCancelCircuit, useStartCircuit } from "../../api/mutations";
import { useCircuits, useModel, useTranscoderSets } from "../../api/queries";
import { ErrorMessage } from "../../components/Status";
import { useServerMessages } from "../../ws/context";
import { CircuitView } from "./CircuitView";
import { TranscoderSetup } from "./TranscoderSetup";

interface JobState {
  status: string;
  done: number;
  total: number;
  detail?: string | null;
}

/**
 * Trace a prompt's attribution graph over a transcoder set (a background job: progress arrives as job events
 * on the socket), browse earlier circuits, and explore one: prune, hover, pin, group into supernodes,
 * intervene, send a node to the Patch console.
 */
export function CircuitsPage() {
  const [params, setParams] = useSearchParams();
  const model = useModel();
  const sets = useTranscoderSets();
  const circuits = useCircuits();
  const start = useStartCircuit();
  const cancel = useCancelCircuit();
  const [setId, setSetId] = useState<string>("");
  const [prompt, setPrompt] = useState("The capital of France is");
  const [target, setTarget] = useState(" Paris");
  const [maxNodes, setMaxNodes] = useState(512);
  const [jobs, setJobs] = useState<Record<string, JobState>>({});
  const current = params.get("id") ?? circuits.data?.[0]?.id ?? null;
  const modelSets = (sets.data ?? []).filter((s) => !model.data?.model_id || s.model_id === model.data.model_id);
  const chosenSet = setId || modelSets[modelSets.length - 1]?.id || "";

  useServerMessages("job", (m) => {
    if (m.kind !== "circuit") return;
    setJobs((prev) => ({ ...prev, [m.job_id]: { status: m.status, done: m.done, total: m.total, detail: m.detail } }));
  });

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    if (!chosenSet) return;
    // the target keeps its leading space (" Paris" and "Paris" are different tokens); empty: the most probable tokens
    start.mutate({ prompt, set_id: chosenSet, max_feature_nodes: maxNodes, ...(target ? { target } : {}) }, {
      onSuccess: (r) => setParams({ id: r.id }, { replace: true }),
    });
  };
  const row = circuits.data?.find((c) => c.id === current);
  const job = current ? jobs[current] : undefined;
  const running = row?.status === "queued" || row?.status === "running" || job?.status === "running";
  const pct = job && job.total > 0 ? Math.round((100 * job.done) / job.total) : 0;

  return (
    <div className="page circuits-page">
      <h1>Circuits</h1>
      {sets.data && modelSets.length === 0 ? (
        <TranscoderSetup nLayers={model.data?.n_layers ?? null} />
      ) : (
        <form className="card form-grid" onSubmit={submit} aria-label="Trace a circuit">
          <div className="field">
            <label htmlFor="circ-set">Transcoder set</label>
            <select id="circ-set" value={chosenSet} onChange={(e) => setSetId(e.target.value)}>
              {modelSets.map((s) => (
                <option key={s.id} value={s.id}>{s.name} ({s.id})</option>
              ))}
            </select>
          </div>
          <div className="field grow">
            <label htmlFor="circ-prompt">Prompt</label>
            <input id="circ-prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} required />
          </div>
          <div className="field">
            <label htmlFor="circ-target">Target token</label>
            <input id="circ-target" className="mono" value={target} onChange={(e) => setTarget(e.target.value)}
              placeholder="most probable" aria-describedby="circ-target-hint" />
            <span id="circ-target-hint" className="muted small">one token, leading space included; empty: the most probable ones</span>
          </div>
          <div className="field">
            <label htmlFor="circ-max">Max feature nodes</label>
            <input id="circ-max" className="num" type="number" min={1} max={16384} value={maxNodes}
              onChange={(e) => setMaxNodes(Number(e.target.value))} />
          </div>
          <button type="submit" disabled={start.isPending || !chosenSet || running}>{running ? "Tracing…" : "Trace"}</button>
          <ErrorMessage error={errorText(start.error)} />
        </form>
      )}
      {modelSets.length > 0 && (
        <details className="card">
          <summary>Train or import another transcoder set</summary>
          <TranscoderSetup nLayers={model.data?.n_layers ?? null} hasSets />
        </details>
      )}
      {(circuits.data?.length ?? 0) > 0 && (
        <div className="row">
          <label htmlFor="circ-pick">Circuit</label>
          <select id="circ-pick" value={current ?? ""} onChange={(e) => setParams({ id: e.target.value })}>
            {circuits.data!.map((c) => (
              <option key={c.id} value={c.id}>
                {c.prompt.slice(0, 60)}{typeof c.settings.target === "string" ? ` → ${JSON.stringify(c.settings.target)}` : ""} · {c.status} ({c.id})
              </option>
            ))}
          </select>
        </div>
      )}
      {running && current && (
        <section className="card" aria-label="Tracing" data-testid="circuit-job" data-status={job?.status ?? row?.status}>
          <div className="row">
            <span>{job?.detail ?? "queued"} {job && job.total > 0 ? `${job.done} / ${job.total} rows` : ""}</span>
            <button type="button" onClick={() => cancel.mutate(current)} disabled={cancel.isPending}>Cancel</button>
          </div>
          <div className="progress" role="progressbar" aria-label="Tracing progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
            <div className="progress-fill" style={{ width: `${pct}%` }} />
          </div>
        </section>
      )}
      {row?.status === "failed" && <ErrorMessage error={`Tracing failed: ${row.error}`} />}
      {row?.status === "cancelled" && <p className="muted">This circuit was cancelled.</p>}
      {current && row?.status === "done" && <CircuitView key={current} circuitId={current} />}
    </div>
  );
}
