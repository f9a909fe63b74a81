import type { InterveneResponse } from "../../api/types";
import { LogitBars, showToken } from "../../charts/LogitBars/LogitBars";
import { fmt } from "../../charts/useWidth";

/** The next-token distribution before and after an intervention, and the graph's prediction for its logits. */
export function InterventionResult({ what, result }: { what: string; result: InterveneResponse }) {
  const before = result.before.map((t) => ({ id: t.token_id, token: t.token, prob: t.probability, logit: t.logit }));
  const after = result.after.map((t) => ({ id: t.token_id, token: t.token, prob: t.probability, logit: t.logit }));
  return (
    <section className="card" aria-labelledby="iv-h" data-testid="intervention-result">
      <h2 id="iv-h">Intervention on {what}</h2>
      <p className="small">KL(before ‖ after) = <strong data-testid="intervention-kl">{fmt(result.kl)}</strong> nats</p>
      <LogitBars original={before} patched={after} title="Next token: before vs after" />
      <h3>The graph's logit nodes</h3>
      <table className="table small" aria-label="Predicted and measured logit changes">
        <thead><tr><th scope="col">Token</th><th scope="col">Predicted (direct edges)</th><th scope="col">Measured</th></tr></thead>
        <tbody>
          {result.logit_nodes.map((l) => (
            <tr key={l.node}><td className="mono">{showToken(l.token ?? String(l.token_id))}</td><td>{fmt(l.predicted)}</td><td>{fmt(l.measured)}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
