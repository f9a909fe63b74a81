import { useState } from "react";
import { api } from "../../api/endpoints";
import { useAction, useAsync } from "../../api/useAsync";
import { ApiError } from "../../api/errors";
import type { ModelInfo } from "../../api/types";
import { useResync } from "../../ws/context";
import { ErrorMessage, Loading, formatBytes } from "../../components/Status";

/** GET /api/model answers 4xx when nothing is loaded yet; that is a state, not an error. */
async function loadCurrent(): Promise<ModelInfo | null> {
  try {
    return await api.getModel();
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 400 || e.status === 409)) return null;
    throw e;
  }
}

export function ModelPage() {
  const model = useAsync(loadCurrent, []);
  const health = useAsync(() => api.health(), []);
  const load = useAction();
  const [name, setName] = useState("default");
  const [device, setDevice] = useState("");
  const [dtype, setDtype] = useState("");
  useResync(() => {
    model.reload();
    health.reload();
  });

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const info = await load.run(() => api.loadModel({ name: name.trim(), device: device || null, dtype: dtype || null }));
    if (info) model.setData(info);
  };

  return (
    <section aria-labelledby="model-h">
      <h1 id="model-h">Model</h1>
      <p className="muted" data-testid="health">
        Server: {health.error ? <span className="bad">{health.error}</span> : (health.data?.status ?? "…")}
      </p>
      <form className="card form-grid" onSubmit={submit} aria-label="Load a model">
        <div className="field">
          <label htmlFor="model-name">Model</label>
          <input
            id="model-name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="default, a hub id, a local folder or a .gguf file"
            required
          />
        </div>
        <div className="field">
          <label htmlFor="model-device">Device</label>
          <select id="model-device" value={device} onChange={(e) => setDevice(e.target.value)}>
            <option value="">auto</option>
            <option value="cpu">cpu</option>
            <option value="cuda">cuda</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="model-dtype">Dtype</label>
          <select id="model-dtype" value={dtype} onChange={(e) => setDtype(e.target.value)}>
            <option value="">auto</option>
            <option value="float32">float32</option>
            <option value="bfloat16">bfloat16</option>
            <option value="float16">float16</option>
          </select>
        </div>
        <button type="submit" disabled={load.busy || !name.trim()}>
          {load.busy ? "Loading model…" : "Load"}
        </button>
        <ErrorMessage error={load.error} />
      </form>

      <div className="card" data-testid="model-info">
        <h2>Loaded model</h2>
        {model.error ? (
          <ErrorMessage error={model.error} onRetry={model.reload} />
        ) : model.data === undefined ? (
          <Loading what="Loading model status" />
        ) : model.data === null ? (
          <p>No model loaded.</p>
        ) : (
          <ModelTable m={model.data} />
        )}
      </div>
    </section>
  );
}

function ModelTable({ m }: { m: ModelInfo }) {
  const rows: [string, string][] = [
    ["Name", m.name + (m.revision ? ` @ ${m.revision}` : "")],
    ["Architecture", m.architecture],
    ["Layers", String(m.n_layers)],
    ["d_model", String(m.d_model)],
    ["Vocabulary", String(m.vocab_size)],
    ["Device", m.device],
    ["Dtype", m.dtype],
    ["Memory", formatBytes(m.memory_bytes)],
    ["Hook points", String(m.hook_points?.length ?? 0)],
  ];
  return (
    <>
      <dl className="kv">
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd data-testid={`model-${k.toLowerCase().replace(/\W+/g, "-")}`}>{v}</dd>
          </div>
        ))}
      </dl>
      {m.hook_points?.length > 0 && (
        <details>
          <summary>Hook points</summary>
          <ul className="mono small">
            {m.hook_points.map((h) => (
              <li key={h}>{h}</li>
            ))}
          </ul>
        </details>
      )}
    </>
  );
}
