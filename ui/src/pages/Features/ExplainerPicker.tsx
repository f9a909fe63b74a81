import type { ExplainerKind, ExplainRequest } from "../../api/types";

const EXPLAINERS: { value: ExplainerKind; label: string }[] = [
  { value: "loaded", label: "the loaded model" },
  { value: "local", label: "another local model" },
  { value: "endpoint", label: "OpenAI-compatible endpoint (IWB_EXPLAINER_*)" },
];

export interface ExplainerChoice {
  explainer: ExplainerKind;
  /** local: the model to load beside the loaded one (required); endpoint: overrides IWB_EXPLAINER_MODEL */
  model: string;
}

/** The explainer part of a request body (explainer_model only where one is given). */
export function explainerBody(c: ExplainerChoice): Pick<ExplainRequest, "explainer" | "explainer_model"> {
  const m = c.model.trim();
  return c.explainer !== "loaded" && m ? { explainer: c.explainer, explainer_model: m } : { explainer: c.explainer };
}

/** A request the server would refuse before it starts: a local explainer without a model name. */
export const explainerIncomplete = (c: ExplainerChoice) => c.explainer === "local" && !c.model.trim();

/** Which model explains: the loaded one, another local model (by name or folder) or the configured endpoint. */
export function ExplainerPicker({ id, value, onChange }: { id: string; value: ExplainerChoice; onChange: (c: ExplainerChoice) => void }) {
  return (
    <>
      <label htmlFor={id} className="small">with</label>
      <select id={id} aria-label="Explainer" style={{ width: "auto" }} value={value.explainer}
        onChange={(e) => onChange({ ...value, explainer: e.target.value as ExplainerKind })}>
        {EXPLAINERS.map((x) => <option key={x.value} value={x.value}>{x.label}</option>)}
      </select>
      {value.explainer !== "loaded" && (
        <input aria-label="Explainer model" value={value.model} onChange={(e) => onChange({ ...value, model: e.target.value })}
          style={{ width: "16em" }}
          placeholder={value.explainer === "local" ? "model name or folder" : "server default (IWB_EXPLAINER_MODEL)"} />
      )}
    </>
  );
}
