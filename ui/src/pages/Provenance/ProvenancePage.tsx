import { useMemo, useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { downloadBlob } from "../../api/endpoints";
import { errorText } from "../../api/errors";
import { useProvenance } from "../../api/mutations";
import { useUpstream } from "../../api/queries";
import type { ProvenanceGraphData } from "../../api/types";
import { SaePicker } from "../../components/SaePicker";
import { ErrorMessage } from "../../components/Status";
import { UpstreamSaes } from "../../components/UpstreamSaes";
import { ProvenanceGraph } from "../../charts/ProvenanceGraph/ProvenanceGraph";
import type { Keep } from "../../charts/ProvenanceGraph/layout";
import { fmt } from "../../charts/useWidth";
import { showToken } from "../../tokens/display";

/** A percentage slider for one edge class. */
function ShareSlider({ id, label, value, onChange }: { id: string; label: string; value: number; onChange: (v: number) => void }) {
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <input id={id} type="range" min={0.05} max={1} step={0.05} value={value} onChange={(e) => onChange(Number(e.target.value))} />
      <span className="mono" data-testid={`${id}-value`}>{Math.round(value * 100)}%</span>
    </>
  );
}

export function ProvenancePage() {
  const [params, setParams] = useSearchParams();
  const nav = useNavigate();
  const [saeId, setSaeId] = useState<string | null>(params.get("sae"));
  const [feature, setFeature] = useState(params.get("feature") ?? "");
  const [depth, setDepth] = useState(2);
  const [topK, setTopK] = useState(5);
  const [prompt, setPrompt] = useState("");
  const [graph, setGraph] = useState<ProvenanceGraphData | null>(null);
  const [keep, setKeep] = useState<Keep>({ feature: 1, logit: 1 });
  const load = useProvenance();
  const upstream = useUpstream(saeId, depth);
  const noUpstream = upstream.data != null && upstream.data.available.length === 0;
  const labels = useMemo(() => new Map((graph?.nodes ?? []).map((n) => [n.id, n])), [graph]);
  const nodeName = (id: string) => {
    const n = labels.get(id);
    if (!n) return id;
    return n.kind === "logit" ? `logit ${showToken(n.label ?? "")}` : `L${n.layer} #${n.feature}${n.label ? ` ${n.label}` : ""}`;
  };

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    if (!saeId) return;
    setParams({ sae: saeId, feature }, { replace: true });
    load.mutate({ sae_id: saeId, feature: Number(feature), depth, top_k: topK, prompt: prompt.trim() ? prompt : undefined }, {
      onSuccess: (g) => {
        setGraph(g);
        setKeep({ feature: 1, logit: 1 });
      },
      onError: () => setGraph(null),
    });
  };

  return (
    <div className="page provenance-page">
      <h1>Provenance</h1>
      <form className="card form-grid" onSubmit={submit} aria-label="Build a provenance graph">
        <SaePicker id="prov-sae" value={saeId} onChange={setSaeId} />
        <div className="field">
          <label htmlFor="prov-feature">Feature index</label>
          <input id="prov-feature" type="number" min={0} value={feature} onChange={(e) => setFeature(e.target.value)} required />
        </div>
        <div className="field">
          <label htmlFor="prov-depth">Depth (layers upstream)</label>
          <input id="prov-depth" type="number" min={1} max={6} value={depth} onChange={(e) => setDepth(Number(e.target.value))} />
        </div>
        <div className="field">
          <label htmlFor="prov-topk">Top-k per node</label>
          <input id="prov-topk" type="number" min={1} max={50} value={topK} onChange={(e) => setTopK(Number(e.target.value))} />
        </div>
        <div className="field grow" style={{ minWidth: "24rem" }}>
          <label htmlFor="prov-prompt">Prompt (optional: adds attribution and validation)</label>
          <textarea id="prov-prompt" rows={3} value={prompt} onChange={(e) => setPrompt(e.target.value)} />
        </div>
        <button type="submit" disabled={load.isPending || !saeId || feature === "" || noUpstream}
          title={noUpstream ? "no SAEs below this one yet: train some first" : undefined}>
          {load.isPending ? "Tracing…" : "Trace"}
        </button>
        {saeId && <div style={{ flexBasis: "100%" }}><UpstreamSaes saeId={saeId} depth={depth} /></div>}
        <ErrorMessage error={errorText(load.error)} />
      </form>
      {graph && (
        <section className="card" aria-labelledby="graph-h">
          <h2 id="graph-h">Graph <span className="muted small">{graph.nodes.length} nodes · {graph.edges.length} edges</span></h2>
          <div className="row">
            <ShareSlider id="prune-feature" label="Feature edges: keep" value={keep.feature}
              onChange={(v) => setKeep((k) => ({ ...k, feature: v }))} />
            <ShareSlider id="prune-logit" label="Logit edges: keep" value={keep.logit}
              onChange={(v) => setKeep((k) => ({ ...k, logit: v }))} />
            <button type="button" onClick={() => downloadBlob(new Blob([JSON.stringify(graph, null, 2)], { type: "application/json" }), "provenance.json")}>
              Export JSON
            </button>
          </div>
          <p className="muted small">
            Each slider keeps, into every node, its strongest incoming edges of that class until they carry the share of
            its total |weight|. Click a node to open it; drag to pin, double-click to unpin.
          </p>
          <ProvenanceGraph nodes={graph.nodes} edges={graph.edges} keep={keep} validation={graph.validation?.edges}
            onSelect={(n) => n.kind !== "logit" && nav(`/features/${encodeURIComponent(n.sae_id ?? saeId ?? "")}/${n.feature}`)} />
          {graph.validation && graph.validation.edges.length > 0 && (
            <>
              <h3>Edge validation (ablation)</h3>
              <p data-testid="prov-correlation">Predicted vs actual correlation: <strong>{fmt(graph.validation.correlation)}</strong></p>
              <table className="table" aria-label="Validated edges">
                <thead><tr><th scope="col">From</th><th scope="col">To</th><th scope="col">Predicted</th><th scope="col">Actual</th></tr></thead>
                <tbody>
                  {graph.validation.edges.map((v) => (
                    <tr key={`${v.source}->${v.target}`} data-testid="validation-row">
                      <td title={v.source}>{nodeName(v.source)}</td><td title={v.target}>{nodeName(v.target)}</td>
                      <td>{fmt(v.predicted)}</td><td>{fmt(v.actual)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </section>
      )}
    </div>
  );
}
