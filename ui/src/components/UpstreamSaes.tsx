import { useState } from "react";
import { Link } from "react-router";
import { errorText } from "../api/errors";
import { useStartTraining } from "../api/mutations";
import { useUpstream } from "../api/queries";
import type { TrainingRequest } from "../api/types";
import { ErrorMessage } from "./Status";

/**
 * Before tracing: which upstream SAEs a provenance graph of this SAE would use (GET /api/provenance/upstream), and,
 * where layers lack one, a one-click training of those layers like the target SAE (POST /api/training; the new SAEs
 * are analysed when training ends, and this list follows through the SAE list's cache).
 */
export function UpstreamSaes({ saeId, depth = 2 }: { saeId: string; depth?: number }) {
  const up = useUpstream(saeId, depth);
  const train = useStartTraining();
  const [picked, setPicked] = useState<Set<number> | null>(null);
  const [tokens, setTokens] = useState(200_000);
  const u = up.data;
  if (up.error) return <ErrorMessage error={errorText(up.error)} />;
  if (!u) return <p className="muted small">Looking for upstream SAEs…</p>;
  const layers = picked ?? new Set(u.suggested_layers);
  const offer = [...new Set([...u.suggested_layers, ...u.missing_layers.slice(0, 4)])].sort((a, b) => b - a);
  return (
    <div className="upstream" data-testid="upstream-saes">
      {u.available.length > 0 ? (
        <p className="small">
          Provenance traces through {u.available.slice(0, depth).map((a, i) => (
            <span key={a.sae_id}>{i > 0 && ", "}layer {a.layer} (<span className="mono">{a.name}</span>)</span>
          ))}.
          {u.missing_layers.length > 0 && <span className="muted"> No SAE at layer{u.missing_layers.length > 1 ? "s" : ""} {u.missing_layers.join(", ")}.</span>}
        </p>
      ) : (
        <p className="notice small" data-testid="no-upstream">
          {u.layer === 0
            ? "This SAE reads layer 0: there is nothing upstream to trace."
            : `No SAEs below layer ${u.layer} yet: provenance needs at least one. Train some here.`}
        </p>
      )}
      {offer.length > 0 && (
        <div className="row small">
          <span>Train SAEs at layers</span>
          {offer.map((l) => (
            <label key={l} className="check">
              <input type="checkbox" checked={layers.has(l)} onChange={(e) => {
                const s = new Set(layers);
                if (e.target.checked) s.add(l); else s.delete(l);
                setPicked(s);
              }} /> {l}
            </label>
          ))}
          <label htmlFor={`up-tokens-${saeId}`}>tokens</label>
          <input id={`up-tokens-${saeId}`} type="number" min={1000} step={1000} className="num" value={tokens}
            onChange={(e) => setTokens(Number(e.target.value))} />
          <button type="button" disabled={train.isPending || layers.size === 0} onClick={() => {
            const body: TrainingRequest = {
              layers: [...layers].sort((a, b) => a - b), hook: u.train.hook as TrainingRequest["hook"],
              d_sae: u.train.d_sae, architecture: u.train.architecture as TrainingRequest["architecture"],
              ...(u.train.k != null ? { k: u.train.k } : {}), total_tokens: tokens, analyze: true,
            };
            train.mutate(body);
          }}>{train.isPending ? "Starting…" : `Train ${layers.size} SAE${layers.size === 1 ? "" : "s"}`}</button>
        </div>
      )}
      {train.data && (
        <p className="small" data-testid="upstream-training">
          Training started (run <span className="mono">{train.data.run_id}</span>): follow it on the <Link to="/train">Train page</Link>.
        </p>
      )}
      <ErrorMessage error={errorText(train.error)} />
    </div>
  );
}
