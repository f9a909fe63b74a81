import { useState } from "react";
import { errorText } from "../../api/errors";
import { useGenerate } from "../../api/mutations";
import type { GenerateResponse } from "../../api/types";
import { ErrorMessage } from "../../components/Status";

/** Original vs patched continuation of the prompt (POST /api/generate). */
export function GenerateCompare({ text, patchIds }: { text: string; patchIds: string[] }) {
  const [maxNew, setMaxNew] = useState(32);
  const [res, setRes] = useState<GenerateResponse | null>(null);
  const gen = useGenerate();
  return (
    <section className="card" aria-labelledby="gen-h">
      <h2 id="gen-h">Generation</h2>
      <div className="row">
        <label htmlFor="gen-max">New tokens</label>
        <input id="gen-max" type="number" min={1} max={256} value={maxNew} className="num" onChange={(e) => setMaxNew(Number(e.target.value))} />
        <button type="button" disabled={gen.isPending || !text.trim()} onClick={() => gen.mutate({ text, max_new_tokens: maxNew, patch_ids: patchIds }, { onSuccess: setRes })}>{gen.isPending ? "Generating…" : "Generate both"}</button>
      </div>
      <ErrorMessage error={errorText(gen.error)} />
      {res && (
        <div className="two-col">
          <div><h3>Original</h3><pre className="gen" data-testid="gen-original">{res.original}</pre></div>
          <div><h3>Patched</h3><pre className="gen" data-testid="gen-patched">{res.patched}</pre></div>
        </div>
      )}
    </section>
  );
}
