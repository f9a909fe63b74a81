import { useState } from "react";
import { errorText } from "../../api/errors";
import { useActivations } from "../../api/mutations";
import type { ActivationsResponse } from "../../api/types";
import { TokenHighlight } from "../../charts/TokenHighlight/TokenHighlight";
import { ErrorMessage } from "../../components/Status";

/** Run the feature on the user's own text (POST /api/saes/{id}/activations). */
export function TryText({ saeId, index, maxActivation }: { saeId: string; index: number; maxActivation: number }) {
  const [text, setText] = useState("");
  // the last answer stays on screen while a new run is pending or after it fails
  const [res, setRes] = useState<ActivationsResponse | null>(null);
  const act = useActivations(saeId);
  const feat = res?.features.find((f) => f.index === index);
  return (
    <form
      className="card"
      aria-label="Try your own text"
      onSubmit={(e) => {
        e.preventDefault();
        act.mutate({ text, features: [index] }, { onSuccess: setRes });
      }}
    >
      <h2>Try your own text</h2>
      <label htmlFor="try-text">Text</label>
      <textarea id="try-text" rows={3} value={text} onChange={(e) => setText(e.target.value)} required />
      <button type="submit" disabled={act.isPending || !text.trim()}>{act.isPending ? "Running…" : "Run feature"}</button>
      <ErrorMessage error={errorText(act.error)} />
      {res && (feat ? (
        <TokenHighlight tokens={res.tokens} activations={feat.activations} max={maxActivation || undefined} label="Activations on your text" />
      ) : (
        <p className="muted">The server returned no values for feature {index}.</p>
      ))}
    </form>
  );
}
