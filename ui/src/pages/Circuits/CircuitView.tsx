import { useEffect, useMemo, useState } from "react";
import { downloadBlob, api } from "../../api/endpoints";
import { errorText } from "../../api/errors";
import { useIntervene } from "../../api/mutations";
import { useCircuit } from "../../api/queries";
import type { CircuitNode, InterveneResponse } from "../../api/types";
import { CircuitGraph, type Supernode } from "../../charts/CircuitGraph/CircuitGraph";
import { showToken } from "../../charts/LogitBars/LogitBars";
import { fmt } from "../../charts/useWidth";
import { ErrorMessage, Loading } from "../../components/Status";
import { InterventionResult } from "./InterventionResult";
import { NodePanel } from "./NodePanel";
import { SupernodePanel } from "./SupernodePanel";

/** Debounce a value: the prune slider moves freely, the server is asked once it rests. */
function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** One traced circuit: scores, the edge check, the graph with its prune slider, node and supernode panels. */
export function CircuitView({ circuitId }: { circuitId: string }) {
  const [threshold, setThreshold] = useState<number | null>(null);
  const asked = useDebounced(threshold, 250);
  const q = useCircuit(circuitId, asked);
  const [selected, setSelected] = useState<CircuitNode | null>(null);
  const [pinned, setPinned] = useState<Set<number>>(new Set());
  const [supernodes, setSupernodes] = useState<Supernode[]>([]);
  const intervene = useIntervene(circuitId);
  const [result, setResult] = useState<{ what: string; res: InterveneResponse } | null>(null);
  const c = q.data;
  const g = c?.graph;
  const shown = threshold ?? g?.node_threshold ?? 0.8;
  const nodesById = useMemo(() => new Map((g?.nodes ?? []).map((n) => [n.node, n])), [g]);
  // the token the researcher asked about, else the most probable one: the intervention reports its probability
  const target = c?.summary?.target ?? c?.summary?.logits?.[0] ?? null;
  const targetNode = target ? g?.nodes.find((n) => n.kind === "logit" && n.feature === target.token_id)?.node ?? null : null;

  if (!c) return q.error ? <ErrorMessage error={errorText(q.error)} onRetry={() => void q.refetch()} /> : <Loading what="Loading the graph" />;
  const s = c.summary;
  const togglePin = (n: CircuitNode) =>
    setPinned((prev) => {
      const next = new Set(prev);
      if (next.has(n.node)) next.delete(n.node);
      else next.add(n.node);
      return next;
    });
  const run = (what: string, nodes: { node: number; value: number }[]) =>
    intervene.mutate({ nodes }, { onSuccess: (res) => setResult({ what, res }) });
  const exportAs = async (format: "circuit-tracer" | "workbench") => {
    const { blob, filename } = await api.exportCircuit(circuitId, format);
    downloadBlob(blob, filename);
  };

  return (
    <>
      {s && (
        <section className="card" aria-labelledby="circ-scores-h">
          <h2 id="circ-scores-h">“{c.prompt}”</h2>
          <dl className="kv">
            <div><dt>Replacement score</dt><dd data-testid="replacement-score">{fmt(s.replacement_score)}</dd></div>
            <div><dt>Completeness score</dt><dd data-testid="completeness-score">{fmt(s.completeness_score)}</dd></div>
            <div><dt>Intervention check (r)</dt><dd data-testid="validation-r">{fmt(s.validation?.pearson)} <span className="muted small">{s.validation ? `${s.validation.checks.length} edges, ${s.validation.freeze}` : "not run"}</span></dd></div>
            {target && (
              <div><dt>{s.target ? "Target" : "Top token"}</dt>
                <dd data-testid="circuit-target"><span className="mono">{showToken(target.token)}</span> p = {fmt(target.probability)}</dd></div>
            )}
            <div><dt>Feature nodes</dt><dd>{s.n_features} of {s.n_active_features ?? "?"} active</dd></div>
            <div><dt>Graph time</dt><dd>{fmt(s.graph_seconds)} s</dd></div>
          </dl>
        </section>
      )}
      <div className="circuits-layout">
        <section className="card" aria-labelledby="circ-graph-h">
          <h2 id="circ-graph-h">Graph <span className="muted small">{g?.nodes.length ?? 0} nodes · {g?.edges.length ?? 0} edges{q.isFetching ? " · updating…" : ""}</span></h2>
          <div className="row">
            <label htmlFor="circ-prune">Prune: keep nodes holding</label>
            <input id="circ-prune" type="range" min={0.3} max={0.99} step={0.01} value={shown}
              aria-valuetext={`${Math.round(shown * 100)}% of the influence`}
              onChange={(e) => setThreshold(Number(e.target.value))} />
            <span className="mono" data-testid="prune-value">{Math.round(shown * 100)}%</span>
            <span className="muted small">of the influence on the logits</span>
            <button type="button" onClick={() => void exportAs("circuit-tracer")}>Export (circuit-tracer JSON)</button>
            <button type="button" onClick={() => void exportAs("workbench")}>Export (full graph)</button>
          </div>
          <p className="muted small">Positions left to right, layers bottom to top, outputs on top. Hover a node for its label
            and top contexts; click or Enter selects it; “p” pins it. Blue edges excite, red inhibit.</p>
          {g && <CircuitGraph nodes={g.nodes} edges={g.edges} promptTokens={g.prompt_tokens} nLayers={g.n_layers}
            selected={selected?.node ?? null} target={targetNode} pinned={pinned} supernodes={supernodes} onSelect={setSelected}
            onTogglePin={togglePin} />}
        </section>
        <aside aria-label="Selection">
          {selected && (
            <NodePanel key={selected.node} circuitId={circuitId} node={selected} pinned={pinned.has(selected.node)} onTogglePin={togglePin}
              onIntervene={(value) => run(`node ${selected.node}`, [{ node: selected.node, value }])} busy={intervene.isPending} />
          )}
          <SupernodePanel pinned={[...pinned].map((id) => nodesById.get(id)).filter((n): n is CircuitNode => !!n)}
            supernodes={supernodes} busy={intervene.isPending}
            onGroup={(label) => {
              setSupernodes((prev) => [...prev, { id: `s${Date.now()}`, label, members: [...pinned] }]);
              setPinned(new Set());
            }}
            onUngroup={(id) => setSupernodes((prev) => prev.filter((x) => x.id !== id))}
            onIntervene={(sn, factor) => run(`supernode “${sn.label}”`, sn.members.map((m) => ({
              node: m, value: factor * (nodesById.get(m)?.activation ?? 0) })))} />
          <ErrorMessage error={errorText(intervene.error)} />
          {result && <InterventionResult what={result.what} result={result.res} targetTokenId={target?.token_id ?? null} />}
        </aside>
      </div>
    </>
  );
}
