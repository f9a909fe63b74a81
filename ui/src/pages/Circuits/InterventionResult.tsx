import type { InterveneResponse } from "../../api/types";
import { LogitBars, showToken } from "../../charts/LogitBars/LogitBars";
import { fmt } from "../../charts/useWidth";

/** The next-token distribution before and after an intervention, and the graph's prediction for its logits. */
export function InterventionResult({ what, result, targetTokenId = null }: {
  what: string;
  result: InterveneResponse;
  /** the circuit's target token: its probability change is the headline */
  targetTokenId?: number | null;
}) {
  const target = result.logit_nodes.find((l) => l.token_id === targetTokenId) ?? null;
  const before = result.before.map((t) => ({ id: t.token_id, token: t.token, prob: t.probability, logit: t.logit }));
  const after = result.after.map((t) => ({ id: t.token_id, token: t.token, prob: t.probability, logit: t.logit }));
  return (
    <section className="card" aria-labelledby="iv-h" data-testid="intervention-result">
      <h2 id="iv-h">Intervention on {what}</h2>
      {target && (
        <p data-testid="intervention-target">
          P(<span className="mono">{showToken(target.token ?? String(target.token_id))}</span>):{" "}
          <strong>{fmt(target.before)}</strong> → <strong>{fmt(target.after)}</strong>{" "}
          <span className={target.after < target.before ? "delta-neg" : "delta-pos"}>
            ({target.after >= target.before ? "+" : "−"}{fmt(Math.abs(target.after - target.before))})
          </span>
        </p>
      )}
      <p className="small">KL(before ‖ after) = <strong data-testid="intervention-kl">{fmt(result.kl)}</strong> nats</p>
      <LogitBars original={before} patched={after} title="Next token: before vs after" />
      <h3>The graph's logit nodes</h3>
      <table className="table small" aria-label="Predicted and measured logit changes">
        <thead><tr><th scope="col">Token</th><th scope="col">p before</th><th scope="col">p after</th><th scope="col">Logit change predicted (direct edges)</th><th scope="col">measured</th></tr></thead>
        <tbody>
          {result.logit_nodes.map((l) => (
            <tr key={l.node} data-target={l.token_id === targetTokenId ? "true" : undefined}>
              <td className="mono">{showToken(l.token ?? String(l.token_id))}</td><td>{fmt(l.before)}</td><td>{fmt(l.after)}</td>
              <td>{fmt(l.predicted)}</td><td>{fmt(l.measured)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
