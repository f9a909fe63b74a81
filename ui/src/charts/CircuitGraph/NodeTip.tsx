import { useFeatureIfAny } from "../../api/queries";
import type { CircuitNode } from "../../api/types";
import { fmt } from "../useWidth";
import { nodeTitle } from "./layout";

/** A context's tokens with its strongest one marked. */
export function contextText(tokens: string[], activations: number[]) {
  const peak = activations.indexOf(Math.max(...activations));
  return tokens.map((t, i) => (
    <span key={i} className={i === peak ? "tok-peak" : undefined}>{t}</span>
  ));
}

/** Tooltip of a node: what it is, its activation or probability; for a feature its label and top contexts. */
export function NodeTip({ node, x, y }: { node: CircuitNode; x: number; y: number }) {
  const isFeature = node.kind === "feature";
  const detail = useFeatureIfAny(isFeature ? node.sae_id : null, isFeature ? node.feature : null);
  return (
    <div className="graph-tip circuit-tip" role="tooltip" data-testid="circuit-tip" style={{ position: "absolute", left: x + 12, top: y + 12 }}>
      <div><strong>{nodeTitle(node)}</strong></div>
      {node.activation != null && <div>activation {fmt(node.activation)}</div>}
      <div className="muted">influence {fmt(node.influence)}</div>
      {isFeature && detail.isPending && <div className="muted">loading top contexts…</div>}
      {isFeature && detail.error != null && <div className="muted">not analysed yet (analyse the transcoder for top contexts)</div>}
      {detail.data && (
        <ul className="tip-contexts">
          {detail.data.top_contexts.slice(0, 3).map((c, i) => (
            <li key={i} className="mono small">{contextText(c.tokens, c.activations)}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
