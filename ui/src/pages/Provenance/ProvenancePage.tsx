import { useMemo, useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import * as d3 from "d3";
import { downloadBlob } from "../../api/endpoints";
import { errorText } from "../../api/errors";
import { useProvenance } from "../../api/mutations";
import type { ProvenanceGraphData } from "../../api/types";
import { SaePicker } from "../../components/SaePicker";
import { ErrorMessage } from "../../components/Status";
import { ProvenanceGraph } from "../../charts/ProvenanceGraph/ProvenanceGraph";
import { fmt } from "../../charts/useWidth";

export function ProvenancePage() {
  const [params, setParams] = useSearchParams();
  const nav = useNavigate();
  const [saeId, setSaeId] = useState<string | null>(params.get("sae"));
  const [feature, setFeature] = useState(params.get("feature") ?? "");
  const [depth, setDepth] = useState(2);
  const [topK, setTopK] = useState(5);
  const [prompt, setPrompt] = useState("");
  const [graph, setGraph] = useState<ProvenanceGraphData | null>(null);
  const [threshold, setThreshold] = useState(0);
  const load = useProvenance();
  const maxW = useMemo(() => d3.max(graph?.edges ?? [], (e) => Math.abs(e.weight)) ?? 0, [graph]);

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    if (!saeId) return;
    setParams({ sae: saeId, feature }, { replace: true });
    load.mutate({ sae_id: saeId, feature: Number(feature), depth, top_k: topK, prompt: prompt || undefined }, {
      onSuccess: (g) => {
        setGraph(g);
        setThreshold(0);
      },
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
        <div className="field grow">
          <label htmlFor="prov-prompt">Prompt (optional: adds attribution and validation)</label>
          <input id="prov-prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} />
        </div>
        <button type="submit" disabled={load.isPending || !saeId || feature === ""}>{load.isPending ? "Tracing…" : "Trace"}</button>
        <ErrorMessage error={errorText(load.error)} />
      </form>
      {graph && (
        <section className="card" aria-labelledby="graph-h">
          <h2 id="graph-h">Graph <span className="muted small">{graph.nodes.length} nodes · {graph.edges.length} edges</span></h2>
          <div className="row">
            <label htmlFor="prune">Prune |weight| below</label>
            <input id="prune" type="range" min={0} max={maxW || 1} step={(maxW || 1) / 100} value={threshold}
              onChange={(e) => setThreshold(Number(e.target.value))} />
            <span className="mono">{fmt(threshold)}</span>
            <button type="button" onClick={() => downloadBlob(new Blob([JSON.stringify(graph, null, 2)], { type: "application/json" }), "provenance.json")}>
              Export JSON
            </button>
          </div>
          <p className="muted small">Click a node to open it; drag to pin, double-click to unpin.</p>
          <ProvenanceGraph nodes={graph.nodes} edges={graph.edges} threshold={threshold} validation={graph.validation?.edges}
            onSelect={(n) => n.kind !== "logit" && nav(`/features/${encodeURIComponent(n.sae_id ?? saeId ?? "")}/${n.feature}`)} />
          {graph.validation && graph.validation.edges.length > 0 && (
            <>
              <h3>Edge validation (ablation)</h3>
              <p data-testid="prov-correlation">Predicted vs actual correlation: <strong>{fmt(graph.validation.correlation)}</strong></p>
              <table className="table" aria-label="Validated edges">
                <thead><tr><th scope="col">Edge</th><th scope="col">Predicted</th><th scope="col">Actual</th></tr></thead>
                <tbody>
                  {graph.validation.edges.map((v) => (
                    <tr key={`${v.source}->${v.target}`}>
                      <td className="mono">{v.source} → {v.target}</td><td>{fmt(v.predicted)}</td><td>{fmt(v.actual)}</td>
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
