import type { InferenceResponse } from "../../api/types";

/** What the bars show: a REST /api/inference answer or a WS `logits` message. */
export type LogitsView = Pick<InferenceResponse, "original" | "patched" | "moved" | "kl">;
import { LogitBars, showToken } from "../../charts/LogitBars/LogitBars";
import { fmt } from "../../charts/useWidth";

/** Original vs patched next-token distribution, KL and the tokens that moved most. */
export function LiveLogits({ result, latencyMs }: { result: LogitsView; latencyMs?: number | null }) {
  return (
    <div data-testid="live-logits">
      <p className="stats">
        <span data-testid="kl">KL(original‖patched) = {fmt(result.kl, 4)}</span>
        {latencyMs != null && <span className="muted">{Math.round(latencyMs)} ms</span>}
      </p>
      <LogitBars original={result.original} patched={result.patched} />
      {result.moved.length > 0 && (
        <table className="table" aria-label="Tokens that moved most">
          <thead>
            <tr><th scope="col">Token</th><th scope="col">Original</th><th scope="col">Patched</th><th scope="col">Δ</th></tr>
          </thead>
          <tbody>
            {result.moved.map((m) => (
              <tr key={m.id}>
                <td className="mono">{showToken(m.token)}</td>
                <td>{fmt(m.original_probability)}</td>
                <td>{fmt(m.patched_probability)}</td>
                <td className={m.delta >= 0 ? "pos" : "neg"}>{m.delta >= 0 ? "+" : ""}{fmt(m.delta)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
