import { useState } from "react";
import { api } from "../../api/endpoints";
import { useAction } from "../../api/useAsync";
import type { ActivationsResponse } from "../../api/types";
import { TokenHighlight } from "../../charts/TokenHighlight/TokenHighlight";
import { ErrorMessage } from "../../components/Status";

/** Run the feature on the user's own text (POST /api/saes/{id}/activations). */
export function TryText({ saeId, index, maxActivation }: { saeId: string; index: number; maxActivation: number }) {
  const [text, setText] = useState("");
  const [res, setRes] = useState<ActivationsResponse | null>(null);
  const act = useAction();
  const feat = res?.features.find((f) => f.index === index);
  return (
    <form
      className="card"
      aria-label="Try your own text"
      onSubmit={async (e) => {
        e.preventDefault();
        const r = await act.run(() => api.activations(saeId, { text, features: [index] }));
        if (r) setRes(r);
      }}
    >
      <h2>Try your own text</h2>
      <label htmlFor="try-text">Text</label>
      <textarea id="try-text" rows={3} value={text} onChange={(e) => setText(e.target.value)} required />
      <button type="submit" disabled={act.busy || !text.trim()}>{act.busy ? "Running…" : "Run feature"}</button>
      <ErrorMessage error={act.error} />
      {res && (feat ? (
        <TokenHighlight tokens={res.tokens} activations={feat.activations} max={maxActivation || undefined} label="Activations on your text" />
      ) : (
        <p className="muted">The server returned no values for feature {index}.</p>
      ))}
    </form>
  );
}
