import { useState } from "react";
import { errorText } from "../../api/errors";
import { useEvaluatePatch } from "../../api/mutations";
import type { EvaluateResponse, Patch } from "../../api/types";
import { ErrorMessage } from "../../components/Status";
import { fmt } from "../../charts/useWidth";
import { TokenChips } from "../../components/TokenChips";
import { parseTargets } from "../../tokens/targets";

function BeforeAfter({ title, r }: { title: string; r: EvaluateResponse }) {
  const max = Math.max(r.mean_before, r.mean_after, 1e-9);
  return (
    <div className="effect" data-testid={`effect-${title.toLowerCase()}`}>
      <h3>{title}</h3>
      {(["before", "after"] as const).map((k) => {
        const v = k === "before" ? r.mean_before : r.mean_after;
        return (
          <div key={k} className="row">
            <span className="effect-label">{k}</span>
            <span className={`effect-bar bar-${k === "before" ? "original" : "patched"}`} style={{ width: `${(v / max) * 200}px` }} />
            <span className="mono">{fmt(v)}</span>
          </div>
        );
      })}
      <p className="muted small">{r.mean_after < r.mean_before ? "drops" : "rises"} by {fmt(Math.abs(r.mean_before - r.mean_after))}</p>
      <details>
        <summary>Per text</summary>
        <ul className="small">
          {r.results.map((x, i) => <li key={i}>{fmt(x.before)} → {fmt(x.after)}: {x.text}</li>)}
        </ul>
      </details>
    </div>
  );
}

/** Probability of the target tokens before/after the patch on both sets (POST /api/patches/{id}/evaluate). */
export function EffectCheck({ patch, positive, negative }: { patch: Patch; positive: string[]; negative: string[] }) {
  const [targets, setTargets] = useState("");
  const [res, setRes] = useState<{ pos: EvaluateResponse; neg: EvaluateResponse } | null>(null);
  const act = useEvaluatePatch();
  const target_tokens = parseTargets(targets);
  return (
    <section className="card" aria-labelledby="effect-h">
      <h2 id="effect-h">Effect check of “{patch.name}”</h2>
      <p className="muted small">
        Patch <span className="mono">{patch.id}</span>: {patch.mode} of features {patch.features.join(", ")} at {patch.hook_name}{" "}
        (strength {fmt(patch.absolute_strength ?? patch.strength)}). The probability of the target tokens as the next token,
        before and after (this check applies the patch itself, whether or not it is enabled).
      </p>
      <div className="row">
        <label htmlFor="targets">Target tokens (comma-separated; \s space, \n newline, \t tab, \, comma)</label>
        <input id="targets" value={targets} onChange={(e) => setTargets(e.target.value)} placeholder="\sYes, \sNo, \n" />
        {target_tokens.length > 0 && <TokenChips tokens={target_tokens} limit={20} label="Targets as read" />}
        <button type="button" disabled={act.isPending || target_tokens.length === 0} onClick={() => {
          const requests = [{ texts: positive, target_tokens }, { texts: negative, target_tokens }];
          act.mutate({ patchId: patch.id, requests }, { onSuccess: ([pos, neg]) => setRes({ pos, neg }) });
        }}>{act.isPending ? "Evaluating…" : "Evaluate"}</button>
      </div>
      <ErrorMessage error={errorText(act.error)} />
      {res && [...new Set([...res.pos.notes, ...res.neg.notes])].map((n) => <p key={n} className="muted small">{n}</p>)}
      {res && (
        <div className="two-col">
          <BeforeAfter title="Positive" r={res.pos} />
          <BeforeAfter title="Negative" r={res.neg} />
        </div>
      )}
    </section>
  );
}
