/**
 * Wire types of the workbench REST API: aliases of the types generated from the server's OpenAPI schema
 * (src/api/schema.d.ts, written by `npm run gen:api` from ui/openapi.json, which
 * `python scripts/dump_openapi.py` dumps from the live app). Never hand-write a wire shape here: when a route
 * changes, regenerate and let the compiler show which page to fix. Pages import only from this module.
 * The few types below that are not aliases describe things the schema leaves open (dicts of metrics) or
 * client-side choices (sort keys).
 */
import type { components } from "./schema";

type S = components["schemas"];

// ---------- model / health / corpora ----------
export type Health = S["Health"];
export type ModelInfo = S["ModelInfo"];
export type ModelStatus = ModelInfo["status"];
export type LoadModelRequest = S["LoadModelRequest"];
export type Corpus = S["CorpusInfo"];
export type CountProgress = S["CountProgressWire"];
export type RegisterCorpus = S["RegisterCorpus"];
export type DeviceMemory = S["DeviceMemoryInfo"];

// ---------- training ----------
export type TrainingRequest = S["TrainingRequest"];
export type Architecture = NonNullable<TrainingRequest["architecture"]>;
export type HookKind = NonNullable<TrainingRequest["hook"]>;
export type TrainingRun = S["RunSummary"];
export type TrainingRunDetail = S["RunDetail"];
export type RunStatus = TrainingRun["status"];
export type StartTrainingResponse = S["TrainingStarted"];
/** one row of metric history: {step, tokens, data: {mse, fvu, l0, dead_fraction, tokens_per_s, eta_s, ...}} */
export type MetricPoint = S["MetricPoint"];
export type SweepRequest = S["SweepRequest"];
/** one SAE of a finished run with its final metrics (run detail `members`) */
export type MemberResult = S["MemberResult"];

/** The numbers the Train page charts, read out of a MetricPoint's `data` or a training_progress message. */
export interface TrainingMetrics {
  mse?: number | null;
  fvu?: number | null;
  l0?: number | null;
  dead_fraction?: number | null;
  tokens_per_s?: number | null;
  eta_s?: number | null;
}

/** Live progress of a run (from training_progress messages, or the run row when no message came yet). */
export interface TrainingProgress {
  step: number;
  tokens: number;
  total_tokens: number;
  tokens_per_s: number | null;
  eta_s: number | null;
  phase?: string | null;
  /** units of the phase done and in all (0: unknown), and what they count (contexts, steps, batches, ...) */
  phase_done?: number;
  phase_total?: number;
  phase_unit?: string;
  /** passes over the training data started so far */
  passes?: number;
}

// ---------- SAEs and features ----------
export type SaeInfo = S["SAEInfo"];
export type SaeDetail = S["SAEDetail"];
export type AnalysisStatus = S["AnalysisStatus"];
export type AnalysisRequest = S["AnalysisRequest"];
export type FeatureSummary = S["FeatureSummary"];
export type Page<T> = { items: T[]; total: number; offset: number; limit: number };
export type FeaturePage = S["FeaturePage"];

/** server-side sort key; a leading "-" sorts descending */
export type FeatureSort =
  | "index" | "-index" | "density" | "-density" | "max_activation" | "-max_activation" | "label" | "-label"
  | "consistency" | "-consistency" | "detection" | "-detection" | "fuzzing" | "-fuzzing";

export interface FeatureQuery {
  offset?: number;
  limit?: number;
  sort?: FeatureSort;
  q?: string;
  /** leave out features whose top contexts all peak on whitespace (server-side) */
  hide_degenerate?: boolean;
}

/** one context window: tokens with this feature's activation on each */
export type Context = S["ContextWindow"];
export type QuantileBucket = S["QuantileBucket"];
export type HistogramData = S["Histogram"];
export type TokenValue = S["TokenValue"];
export type TokenCount = S["TokenCount"];
export type Neighbour = S["Neighbour"];
export type FeatureDetail = S["FeatureDetail"];
export type FeatureUpdate = S["FeatureUpdate"];
export type ActivationsRequest = S["ActivationsRequest"];

// ---------- explanations ----------
export type ExplainRequest = S["ExplainRequestBody"];
export type ExplainerKind = NonNullable<ExplainRequest["explainer"]>;
export type ExplainJob = S["ExplainJob"];
export type ExplanationDetail = S["ExplanationDetail"];
export type ActivationsResponse = S["ActivationsResponse"];

// ---------- patches and inference ----------
export type PatchCreate = S["PatchCreate"];
export type PatchMode = PatchCreate["mode"];
export type StrengthUnit = NonNullable<PatchCreate["strength_unit"]>;
export type Patch = S["Patch"];
export type PatchUpdate = S["PatchUpdate"];
export type TokenProb = S["TokenProb"];
export type TokenMove = S["TokenMove"];
export type InferenceRequest = S["InferenceRequest"];
export type InferenceResponse = S["InferenceResponse"];
export type GenerateRequest = S["GenerateRequest"];
export type GenerateResponse = S["GenerateResponse"];
export type EvaluateRequest = S["EvaluateRequest"];
export type EvaluateResponse = S["EvaluateResponse"];
export type TextEffect = S["TextEffect"];

// ---------- provenance ----------
export type ProvNode = S["ProvenanceNode"];
export type ProvEdge = S["ProvenanceEdge"];
export type EdgeValidation = S["EdgeValidationItem"];
export type LogitEffect = S["LogitEffectItem"];
export type ProvenanceGraphData = S["ProvenanceResponse"];
export type ProvenanceUpstream = S["ProvenanceUpstream"];

export interface ProvenanceQuery {
  sae_id: string;
  feature: number;
  depth?: number;
  prompt?: string;
  top_k?: number;
  threshold?: number;
  max_nodes?: number;
  validate?: boolean;
}

// ---------- contrast ----------
export type ContrastRequest = S["ContrastRequest"];
export type ContrastPosition = NonNullable<ContrastRequest["position"]>;
export type ContrastFeature = S["ContrastFeature"];
export type ContrastResponse = S["ContrastResponse"];
export type ContrastPatchRequest = S["ContrastPatchRequest"];

// ---------- transcoders and circuits ----------
export type TranscoderSet = S["TranscoderSet"];
export type TranscoderSetDetail = S["TranscoderSetDetail"];
export type TranscoderTrainRequest = S["TranscoderTrainRequest"];
export type TranscoderTrainStarted = S["TranscoderTrainStarted"];
export type CircuitRequest = S["CircuitRequest"];
export type CircuitStarted = S["CircuitStarted"];
export type Circuit = S["Circuit"];
export type CircuitDetail = S["CircuitDetail"];
export type CircuitGraphData = S["GraphView"];
export type CircuitNode = S["GraphNode"];
export type CircuitEdge = S["GraphEdge"];
export type InterveneRequest = S["InterveneRequest"];
export type InterveneResponse = S["InterveneResponse"];
export type NodePatchRequest = S["NodePatchRequest"];
export type NodePatchResponse = S["NodePatchResponse"];

// feature map and evaluations (/api/saes/{id}/map, /api/saes/{id}/evals)
export type UnderstandingJob = S["UnderstandingJob"];
export type MapRequest = S["MapRequestBody"];
export type FeatureMapData = S["FeatureMapOut"];
export type MapCluster = S["MapCluster"];
export type EvalRequest = S["EvalRequestBody"];
export type EvalResult = S["EvalResultOut"];
export type EvalCompare = S["EvalCompareOut"];
// ---------- behaviour removal ----------
export type RemoveBehaviourRequest = S["RemoveBehaviourRequest"];
export type BehaviourBudget = S["BudgetIn"];
export type BehaviourSearchMode = NonNullable<RemoveBehaviourRequest["modes"]>[number];
export type BehaviourPosition = NonNullable<RemoveBehaviourRequest["positions"]>[number];
export type BehaviourJobStarted = S["JobStarted"];
export type BehaviourJobSummary = S["BehaviourJobSummary"];
export type BehaviourJob = S["BehaviourJob"];
export type BehaviourCandidate = S["CandidateWire"];
export type BehaviourSplitMetrics = S["SplitMetrics"];
export type BehaviourEdit = S["EditWire"];
export type BehaviourReport = S["BehaviourReport"];
export type BehaviourEditReport = S["EditReport"];
export type BehaviourPromptEffect = S["PromptEffect"];
export type CandidatePatchRequest = S["CandidatePatchRequest"];
/**
 * One row of a job's candidate table: what GET .../candidates answers, or what a `behaviour_candidate` event
 * carried before that list was read again (the event has no Pareto flag, held-out budget use or attempt: those
 * stay undefined until the job ends and the list is refetched).
 */
export type BehaviourCandidateRow = Omit<BehaviourCandidate, "held_out_budget_use" | "pareto" | "attempt">
  & Partial<Pick<BehaviourCandidate, "held_out_budget_use" | "pareto" | "attempt">>;
