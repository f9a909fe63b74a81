import { useState } from "react";
import { errorText } from "../../api/errors";
import { useRemoveBehaviour } from "../../api/mutations";
import { useModel, useSaes } from "../../api/queries";
import type { BehaviourPosition, BehaviourSearchMode, RemoveBehaviourRequest } from "../../api/types";
import { ErrorMessage } from "../../components/Status";
import { BOUNDS, NumberSlider, outOfBounds } from "./NumberSlider";
import { parseTargetTokens, promptLines, promptsFromFile } from "./prompts";

const MODES: BehaviourSearchMode[] = ["ablate", "scale", "clamp"];
const POSITIONS: BehaviourPosition[] = ["last", "max", "all"];

/** A prompt list: the textarea's lines, or the prompts of a loaded file until the text is edited (a loaded
 * prompt may hold line breaks, which one-per-line text cannot). */
interface PromptSet {
  text: string;
  loaded: string[] | null;
}
const prompts = (s: PromptSet) => s.loaded ?? promptLines(s.text);

function PromptInput({ id, label, hint, value, onChange }: {
  id: string;
  label: string;
  hint: string;
  value: PromptSet;
  onChange: (v: PromptSet) => void;
}) {
  const [fileError, setFileError] = useState<string | null>(null);
  const n = prompts(value).length;
  return (
    <div className="field grow">
      <label htmlFor={id}>{label} (one prompt per line)</label>
      <textarea id={id} rows={6} value={value.text} onChange={(e) => onChange({ text: e.target.value, loaded: null })}
        aria-describedby={`${id}-count`} />
      <span id={`${id}-count`} className="muted small" data-testid={`${id}-count`}>
        {n} prompt{n === 1 ? "" : "s"} · {hint}{value.loaded ? " · as loaded from the file (editing the text replaces them)" : ""}
      </span>
      <label htmlFor={`${id}-file`} className="small">…or load a .txt (one per line) or .jsonl (strings or {"{"}"text": …{"}"}) file</label>
      <input id={`${id}-file`} type="file" accept=".txt,.jsonl" onChange={async (e) => {
        const f = e.target.files?.[0];
        if (!f) return;
        try {
          const list = await promptsFromFile(f);
          setFileError(null);
          onChange({ text: list.join("\n"), loaded: list.some((p) => p.includes("\n")) ? list : null });
        } catch (err) {
          setFileError(`${f.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }} />
      <ErrorMessage error={fileError} />
    </div>
  );
}

function toggle<T>(list: T[], item: T, on: boolean): T[] {
  return on ? (list.includes(item) ? list : [...list, item]) : list.filter((x) => x !== item);
}

/**
 * The removal request: two prompt sets, the target (text or tokens), the search's budgets (sliders within the
 * server's bounds) and its less common settings; Start posts it to /api/behaviours/remove.
 */
export function RemoveForm({ onStarted }: { onStarted: (jobId: string) => void }) {
  const model = useModel();
  const saes = useSaes();
  const start = useRemoveBehaviour();
  const [positive, setPositive] = useState<PromptSet>({ text: "", loaded: null });
  const [negative, setNegative] = useState<PromptSet>({ text: "", loaded: null });
  const [targetKind, setTargetKind] = useState<"text" | "tokens">("text");
  const [targetText, setTargetText] = useState("");
  const [targetTokens, setTargetTokens] = useState("");
  const [maxEvaluations, setMaxEvaluations] = useState(150);
  const [maxFeatures, setMaxFeatures] = useState(32);
  const [maxKl, setMaxKl] = useState(0.01);
  const [maxTargetChange, setMaxTargetChange] = useState(0.05);
  const [heldOut, setHeldOut] = useState(0.5);
  const [margin, setMargin] = useState(0.5);
  const [modes, setModes] = useState<BehaviourSearchMode[]>(["ablate", "scale", "clamp"]);
  const [positions, setPositions] = useState<BehaviourPosition[]>(["last", "max"]);
  const [saeIds, setSaeIds] = useState<string[]>([]);
  const [layers, setLayers] = useState("");
  const [trainMissing, setTrainMissing] = useState(false);
  const [trainTokens, setTrainTokens] = useState(100_000);
  const [trainDSae, setTrainDSae] = useState(4608);
  const [trainK, setTrainK] = useState(32);
  const [trainCorpus, setTrainCorpus] = useState("default");
  const [seed, setSeed] = useState(0);
  const [enableResult, setEnableResult] = useState(true);
  const [name, setName] = useState("");

  const modelId = model.data?.model_id;
  const fitting = (saes.data ?? []).filter((s) => (s.kind ?? "sae") === "sae" && (!modelId || s.model_id === modelId));
  const layerList = layers.split(/[\s,]+/).filter(Boolean).map(Number);
  const numbers: [string, keyof typeof BOUNDS, number][] = [
    ["Max evaluations", "max_evaluations", maxEvaluations], ["Max features", "max_features", maxFeatures],
    ["Max KL", "budget.max_kl", maxKl], ["Max target change", "budget.max_target_change", maxTargetChange],
    ["Held-out fraction", "held_out_fraction", heldOut], ["Search margin", "search_margin", margin], ["Seed", "seed", seed],
    ...(trainMissing ? [["Training tokens", "train_tokens", trainTokens], ["SAE latents", "train_d_sae", trainDSae],
      ["Active latents (k)", "train_k", trainK]] as [string, keyof typeof BOUNDS, number][] : []),
  ];
  const problems = [
    ...numbers.flatMap(([label, key, v]) => { const p = outOfBounds(BOUNDS[key], v); return p ? [`${label} ${p}`] : []; }),
    ...(layerList.some((l) => !Number.isInteger(l) || l < 0) ? ["Layers must be whole numbers ≥ 0, separated by commas"] : []),
    ...(modes.length === 0 ? ["Choose at least one mode"] : []),
    ...(positions.length === 0 ? ["Choose at least one ranking position"] : []),
  ];
  const target = targetKind === "text" ? targetText : parseTargetTokens(targetTokens);
  const ready = prompts(positive).length >= 2 && prompts(negative).length >= 2 && target.length > 0 && problems.length === 0;

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    const body: RemoveBehaviourRequest = {
      positive: prompts(positive),
      negative: prompts(negative),
      ...(targetKind === "text" ? { target_text: targetText } : { target_tokens: parseTargetTokens(targetTokens) }),
      budget: { max_kl: maxKl, max_target_change: maxTargetChange },
      max_evaluations: maxEvaluations,
      max_features: maxFeatures,
      modes,
      positions,
      held_out_fraction: heldOut,
      search_margin: margin,
      seed,
      enable_result: enableResult,
      ...(saeIds.length ? { sae_ids: saeIds } : {}),
      ...(layerList.length ? { layers: layerList } : {}),
      ...(trainMissing ? { train_missing: true, train_tokens: trainTokens, train_d_sae: trainDSae, train_k: trainK, train_corpus: trainCorpus } : {}),
      ...(name.trim() ? { name: name.trim() } : {}),
    };
    start.mutate(body, { onSuccess: (r) => onStarted(r.job_id) });
  };

  return (
    <form className="card" onSubmit={submit} aria-label="Remove a behaviour">
      <div className="two-col">
        <PromptInput id="bh-positive" label="Positive prompts" hint="the model shows the behaviour after these"
          value={positive} onChange={setPositive} />
        <PromptInput id="bh-negative" label="Negative prompts" hint="their next-token distribution must stay as it is"
          value={negative} onChange={setNegative} />
      </div>
      <fieldset className="form-grid">
        <legend>Target</legend>
        <label className="check"><input type="radio" name="bh-target-kind" checked={targetKind === "text"}
          onChange={() => setTargetKind("text")} /> Text (its first token)</label>
        <label className="check"><input type="radio" name="bh-target-kind" checked={targetKind === "tokens"}
          onChange={() => setTargetKind("tokens")} /> Tokens</label>
        {targetKind === "text" ? (
          <div className="field grow">
            <label htmlFor="bh-target-text">Target text</label>
            <input id="bh-target-text" className="mono" value={targetText} onChange={(e) => setTargetText(e.target.value)}
              placeholder=" purple" maxLength={2000} aria-describedby="bh-target-hint" />
            <span id="bh-target-hint" className="muted small">kept exactly: a leading space is part of the token</span>
          </div>
        ) : (
          <div className="field grow">
            <label htmlFor="bh-target-tokens">Target tokens (one per line: an id, or a token's text)</label>
            <textarea id="bh-target-tokens" className="mono" rows={3} value={targetTokens}
              onChange={(e) => setTargetTokens(e.target.value)} />
            <span className="muted small">their probabilities are summed</span>
          </div>
        )}
      </fieldset>
      <fieldset className="form-grid">
        <legend>Budgets</legend>
        <NumberSlider id="bh-max-evaluations" label="Max evaluations" spec={BOUNDS.max_evaluations} value={maxEvaluations}
          onChange={setMaxEvaluations} hint="candidates evaluated at most" />
        <NumberSlider id="bh-max-features" label="Max features" spec={BOUNDS.max_features} value={maxFeatures}
          onChange={setMaxFeatures} hint="per layer, top of the contrast ranking" />
        <NumberSlider id="bh-max-kl" label="Max KL" spec={BOUNDS["budget.max_kl"]} value={maxKl} onChange={setMaxKl}
          hint="mean KL on the negatives, nats" />
        <NumberSlider id="bh-max-target-change" label="Max target change" spec={BOUNDS["budget.max_target_change"]}
          value={maxTargetChange} onChange={setMaxTargetChange} hint="largest |Δ target probability| on one negative" />
        <NumberSlider id="bh-held-out" label="Held-out fraction" spec={BOUNDS.held_out_fraction} value={heldOut}
          onChange={setHeldOut} hint="share of each set kept for the report" />
        <NumberSlider id="bh-search-margin" label="Search margin" spec={BOUNDS.search_margin} value={margin}
          onChange={setMargin} hint="share of the budget the search split may spend (below 1 leaves room for the held-out prompts)" />
      </fieldset>
      <details>
        <summary>Search settings</summary>
        <div className="form-grid">
          <fieldset>
            <legend>Modes</legend>
            {MODES.map((m) => (
              <label key={m} className="check"><input type="checkbox" checked={modes.includes(m)}
                onChange={(e) => setModes(toggle(modes, m, e.target.checked))} /> {m}</label>
            ))}
          </fieldset>
          <fieldset>
            <legend>Ranking positions</legend>
            {POSITIONS.map((p) => (
              <label key={p} className="check"><input type="checkbox" checked={positions.includes(p)}
                onChange={(e) => setPositions(toggle(positions, p, e.target.checked))} /> {p}</label>
            ))}
          </fieldset>
          <NumberSlider id="bh-seed" label="Seed" spec={BOUNDS.seed} value={seed} onChange={setSeed} hint="the split and search follow it" />
          <div className="field">
            <label htmlFor="bh-name">Edit set name</label>
            <input id="bh-name" value={name} maxLength={200} onChange={(e) => setName(e.target.value)} placeholder="optional" />
          </div>
          <label className="check"><input type="checkbox" checked={enableResult}
            onChange={(e) => setEnableResult(e.target.checked)} /> Leave the resulting patches enabled</label>
        </div>
        <fieldset>
          <legend>SAEs searched (none ticked: every SAE that fits the model{layerList.length ? ", within the layers" : ""})</legend>
          {fitting.length === 0 && <p className="muted small">No SAE fits the loaded model yet: give layers and train the missing ones.</p>}
          {fitting.map((s) => (
            <label key={s.id} className="check"><input type="checkbox" checked={saeIds.includes(s.id)}
              onChange={(e) => setSaeIds(toggle(saeIds, s.id, e.target.checked))} /> {s.name ?? s.id} <span className="muted small">({s.hook_name})</span></label>
          ))}
        </fieldset>
        <div className="form-grid">
          <div className="field">
            <label htmlFor="bh-layers">Layers</label>
            <input id="bh-layers" className="mono" value={layers} onChange={(e) => setLayers(e.target.value)}
              placeholder={model.data?.n_layers ? `0–${model.data.n_layers - 1}, e.g. 6, 12` : "e.g. 6, 12"} />
          </div>
          <label className="check"><input type="checkbox" checked={trainMissing}
            onChange={(e) => setTrainMissing(e.target.checked)} /> Train SAEs for layers that have none</label>
        </div>
        {trainMissing && (
          <div className="form-grid">
            <NumberSlider id="bh-train-tokens" label="Training tokens" spec={BOUNDS.train_tokens} value={trainTokens} onChange={setTrainTokens} />
            <NumberSlider id="bh-train-d-sae" label="SAE latents" spec={BOUNDS.train_d_sae} value={trainDSae} onChange={setTrainDSae} />
            <NumberSlider id="bh-train-k" label="Active latents (k)" spec={BOUNDS.train_k} value={trainK} onChange={setTrainK} />
            <div className="field">
              <label htmlFor="bh-train-corpus">Training corpus</label>
              <input id="bh-train-corpus" value={trainCorpus} onChange={(e) => setTrainCorpus(e.target.value)} />
            </div>
          </div>
        )}
      </details>
      <div className="row">
        <button type="submit" disabled={start.isPending || !ready}>{start.isPending ? "Starting…" : "Start"}</button>
        {!ready && (
          <span className="muted small" data-testid="bh-not-ready">
            {problems[0] ?? "Give at least two positive and two negative prompts and a target"}
          </span>
        )}
      </div>
      <ErrorMessage error={errorText(start.error)} />
    </form>
  );
}
