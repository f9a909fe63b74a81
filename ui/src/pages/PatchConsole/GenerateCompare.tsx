import { useState } from "react";
import { errorText } from "../../api/errors";
import { useGenerate } from "../../api/mutations";
import type { GenerateResponse } from "../../api/types";
import { ErrorMessage } from "../../components/Status";

/** The prompt's last lines (what the continuations follow), so long prompts do not push them off screen. */
function tail(text: string, lines = 3): string {
  const all = text.split("\n");
  return (all.length > lines ? "…" : "") + all.slice(-lines).join("\n");
}

/**
 * Original vs patched continuation of the prompt (POST /api/generate), aligned in one grid: the prompt's end, then
 * each continuation in its own row, in the same columns, so the three read side by side without scrolling.
 */
export function GenerateCompare({ text, patchIds }: { text: string; patchIds: string[] }) {
  const [maxNew, setMaxNew] = useState(32);
  const [res, setRes] = useState<{ prompt: string; out: GenerateResponse } | null>(null);
  const gen = useGenerate();
  const same = res != null && res.out.original === res.out.patched;
  return (
    <section className="card" aria-labelledby="gen-h">
      <h2 id="gen-h">Generation</h2>
      <div className="row">
        <label htmlFor="gen-max">New tokens</label>
        <input id="gen-max" type="number" min={1} max={128} value={maxNew} className="num" onChange={(e) => setMaxNew(Number(e.target.value))} />
        <button type="button" disabled={gen.isPending || !text.trim()} onClick={() =>
          gen.mutate({ text, max_new_tokens: maxNew, patch_ids: patchIds }, {
            onSuccess: (out) => setRes({ prompt: text, out }),
            onError: () => setRes(null),
          })}>{gen.isPending ? "Generating…" : "Generate both"}</button>
      </div>
      <ErrorMessage error={errorText(gen.error)} />
      {res && (
        <div className="gen-compare" data-testid="gen-compare">
          <strong>Prompt</strong>
          <pre className="gen gen-prompt" data-testid="gen-prompt" title={res.prompt}>{tail(res.prompt)}</pre>
          <strong>Original</strong>
          <pre className="gen" data-testid="gen-original">{res.out.original}</pre>
          <strong>Patched</strong>
          <pre className="gen" data-testid="gen-patched">{res.out.patched}</pre>
          {same && <span />}
          {same && <p className="muted small">Both continuations are identical.</p>}
        </div>
      )}
    </section>
  );
}
