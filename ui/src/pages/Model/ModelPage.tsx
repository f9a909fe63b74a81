import { useState } from "react";
import { errorText } from "../../api/errors";
import { useLoadModel } from "../../api/mutations";
import { useHealth, useModel } from "../../api/queries";
import type { DeviceMemory, ModelInfo } from "../../api/types";
import { ErrorMessage, Loading, formatBytes } from "../../components/Status";

/**
 * Load the default model, a hub id or a local path; show status, device, dtype and memory. A load started
 * elsewhere (another tab, the server's startup) shows through the cache: model_loaded and a `hello` whose model
 * status differs from the cached one reload it (socketSync.ts).
 */
export function ModelPage() {
  const model = useModel();
  const health = useHealth();
  const load = useLoadModel();
  const [name, setName] = useState("default");
  const [device, setDevice] = useState("");
  const [dtype, setDtype] = useState("");

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    load.mutate({ name: name.trim(), device: device || null, dtype: dtype || null });
  };

  return (
    <section aria-labelledby="model-h">
      <h1 id="model-h">Model</h1>
      <p className="muted" data-testid="health">
        Server: {health.error ? <span className="bad">{errorText(health.error)}</span> : (health.data ? `${health.data.status} · v${health.data.version}` : "…")}
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
        <button type="submit" disabled={load.isPending || !name.trim()}>
          {load.isPending ? "Loading model…" : "Load"}
        </button>
        <ErrorMessage error={errorText(load.error)} />
      </form>
      <div className="card" data-testid="model-info" data-status={model.data?.status}>
        <h2>Loaded model</h2>
        {model.error ? (
          <ErrorMessage error={errorText(model.error)} onRetry={() => void model.refetch()} />
        ) : model.data === undefined ? (
          <Loading what="Loading model status" />
        ) : (
          <ModelState m={model.data} />
        )}
      </div>
    </section>
  );
}

/**
 * The model that serves requests, and what is happening to it: while another model loads (or after a load failed)
 * the one still loaded stays on the card, with the load's progress or error above it.
 */
function ModelState({ m }: { m: ModelInfo }) {
  const loaded = m.status === "ready" || m.model_id != null;
  if (m.status === "none") return <p data-testid="model-status">No model loaded.</p>;
  return (
    <>
      {m.status === "loading" && (
        <div data-testid="model-loading">
          <Loading what={`Loading ${m.requested ?? "model"}`} />
          {loaded && <p className="muted small">{m.name ?? m.model_id} is still loaded and serving until it finishes.</p>}
        </div>
      )}
      {m.status === "error" && (
        <ErrorMessage error={`Loading ${m.requested ?? "the model"} failed: ${m.error ?? "unknown error"}`} />
      )}
      {loaded ? <ModelTable m={m} /> : m.status === "error" && <p data-testid="model-status">No model loaded.</p>}
    </>
  );
}

function ModelTable({ m }: { m: ModelInfo }) {
  const rows: [string, string][] = [
    ["Name", (m.name ?? "—") + (m.revision ? ` @ ${m.revision}` : "")],
    ["Model id", m.model_id ?? "—"],
    ["Architecture", `${m.architecture ?? "—"}${m.family ? ` (${m.family})` : ""}`],
    ["Layers", String(m.n_layers ?? "—")],
    ["d_model", String(m.d_model ?? "—")],
    ["Vocabulary", String(m.vocab_size ?? "—")],
    ["Parameters", m.n_params != null ? m.n_params.toLocaleString() : "—"],
    ["Device", m.device ?? "—"],
    ["Dtype", m.dtype ?? "—"],
    ["Weights", m.weights ?? "—"],
    ["Memory", formatBytes(m.memory_bytes)],
    ["Load time", m.load_seconds != null ? `${m.load_seconds.toFixed(1)} s` : "—"],
    ["Hook points", String(m.hook_points?.length ?? 0)],
  ];
  const hooks = m.hook_points ?? [];
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
      {(m.devices?.length ?? 0) > 0 && <DeviceTable devices={m.devices!} dispatched={m.dispatched ?? false} />}
      {(m.layer_devices?.length ?? 0) > 0 && <LayerPlacement layers={m.layer_devices!} />}
      {hooks.length > 0 && (
        <details>
          <summary>Hook points</summary>
          <ul className="mono small">
            {hooks.map((h) => (
              <li key={h}>{h}</li>
            ))}
          </ul>
        </details>
      )}
    </>
  );
}

/** Memory per device (used / total, this server's share, the weights stored there) and the blocks placed on it. */
function DeviceTable({ devices, dispatched }: { devices: DeviceMemory[]; dispatched: boolean }) {
  return (
    <>
      <h3>Devices{dispatched ? " (model dispatched across devices)" : ""}</h3>
      <table className="table" aria-label="Device memory">
        <thead>
          <tr>
            <th scope="col">Device</th><th scope="col">Used / total</th><th scope="col">Free</th>
            <th scope="col">This server</th><th scope="col">Weights</th><th scope="col">Blocks</th>
          </tr>
        </thead>
        <tbody>
          {devices.map((d) => (
            <tr key={d.device} data-testid="device-row" data-device={d.device}>
              <td className="mono">{d.device}</td>
              <td>{d.total_bytes != null ? `${formatBytes(d.used_bytes)} / ${formatBytes(d.total_bytes)}` : "—"}</td>
              <td>{formatBytes(d.free_bytes)}</td>
              <td>{formatBytes(d.allocated_bytes)}</td>
              <td>{formatBytes(d.weight_bytes ?? 0)}</td>
              <td>{blockRanges(d.layers ?? [])}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** [0,1,2,5] -> "0–2, 5" */
export function blockRanges(layers: number[]): string {
  if (layers.length === 0) return "—";
  const sorted = [...layers].sort((a, b) => a - b);
  const parts: string[] = [];
  let start = sorted[0];
  let prev = sorted[0];
  for (const l of sorted.slice(1).concat([NaN])) {
    if (l === prev + 1) {
      prev = l;
      continue;
    }
    parts.push(start === prev ? String(start) : `${start}–${prev}`);
    start = prev = l;
  }
  return parts.join(", ");
}

/** One cell per block, labelled with the device that stores its weights. */
function LayerPlacement({ layers }: { layers: string[] }) {
  const names = [...new Set(layers)];
  return (
    <div data-testid="layer-placement">
      <h3>Layer placement</h3>
      <ol className="layer-strip" aria-label="Block devices" style={{ display: "flex", flexWrap: "wrap", gap: 2, listStyle: "none", padding: 0 }}>
        {layers.map((dev, i) => (
          <li key={i} title={`block ${i}: ${dev}`} data-device={dev} className="mono small"
            style={{ padding: "0 4px", border: "1px solid var(--border, #ccc)", opacity: 0.5 + 0.5 * (1 - names.indexOf(dev) / Math.max(1, names.length)) }}>
            {i}:{dev}
          </li>
        ))}
      </ol>
    </div>
  );
}
