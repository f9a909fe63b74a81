import { useState } from "react";
import { Link } from "react-router";
import { errorText } from "../../api/errors";
import { useNodeToPatch } from "../../api/mutations";
import { useFeatureIfAny } from "../../api/queries";
import type { CircuitNode } from "../../api/types";
import { nodeTitle } from "../../charts/CircuitGraph/layout";
import { contextText } from "../../charts/CircuitGraph/NodeTip";
import { fmt } from "../../charts/useWidth";
import { ErrorMessage } from "../../components/Status";

/** The selected node: what it is, open its feature page, pin it, intervene on it, send it to the Patch console. */
export function NodePanel({ circuitId, node, pinned, onTogglePin, onIntervene, busy }: {
  circuitId: string;
  node: CircuitNode;
  pinned: boolean;
  onTogglePin: (n: CircuitNode) => void;
  onIntervene: (value: number) => void;
  busy: boolean;
}) {
  const [factor, setFactor] = useState(0);
  const toPatch = useNodeToPatch(circuitId);
  const isFeature = node.kind === "feature";
  const detail = useFeatureIfAny(isFeature ? node.sae_id : null, isFeature ? node.feature : null);
  return (
    <section className="card" aria-labelledby="node-h" data-testid="node-panel" data-node={node.node}>
      <h2 id="node-h">{nodeTitle(node)}</h2>
      <dl className="kv small">
        <div><dt>Kind</dt><dd>{node.kind}</dd></div>
        <div><dt>Layer · position</dt><dd>{node.layer} · {node.pos}</dd></div>
        {node.activation != null && <div><dt>Activation</dt><dd>{fmt(node.activation)}</dd></div>}
        {node.probability != null && <div><dt>Probability</dt><dd>{fmt(node.probability)}</dd></div>}
        <div><dt>Influence</dt><dd>{fmt(node.influence)}</dd></div>
      </dl>
      <div className="row">
        <button type="button" onClick={() => onTogglePin(node)} aria-pressed={pinned}>{pinned ? "Unpin" : "Pin"}</button>
        {isFeature && node.sae_id && (
          <Link to={`/features/${encodeURIComponent(node.sae_id)}/${node.feature}`}>Open feature page</Link>
        )}
      </div>
      {isFeature && (
        <>
          <h3>Top contexts</h3>
          {detail.isPending && <p className="muted small">Loading…</p>}
          {detail.error != null && <p className="muted small">No contexts: analyse the transcoder (its feature page) first.</p>}
          {detail.data && (
            <ol className="tip-contexts" aria-label="Top contexts" data-testid="node-contexts">
              {detail.data.top_contexts.slice(0, 5).map((c, i) => (
                <li key={i} className="mono small">{contextText(c.tokens, c.activations)}</li>
              ))}
            </ol>
          )}
          <h3>Intervene</h3>
          <div className="row">
            <label htmlFor="node-factor">Set activation to</label>
            <input id="node-factor" className="num" type="number" step={0.5} value={factor}
              onChange={(e) => setFactor(Number(e.target.value))} />
            <span className="muted small">× its value ({fmt(node.activation)}); 0 ablates</span>
          </div>
          <div className="row">
            <button type="button" disabled={busy} onClick={() => onIntervene(factor * (node.activation ?? 0))}>
              Intervene
            </button>
            <button type="button" disabled={toPatch.isPending}
              onClick={() => toPatch.mutate({ node: node.node, body: { mode: "clamp", value: factor * (node.activation ?? 0) } })}>
              Send to Patch console
            </button>
          </div>
          <ErrorMessage error={errorText(toPatch.error)} />
          {toPatch.data && (
            <p className="small" data-testid="node-patch-note">
              Patch <Link to="/patches">{toPatch.data.patch.name}</Link> created
              ({toPatch.data.exact ? "exact on this prompt" : "differs from the circuit intervention"}): {toPatch.data.note}
            </p>
          )}
        </>
      )}
    </section>
  );
}
