/**
 * Wire types of the workbench REST API, written by hand from the backend issues (#2–#6, #9) until the
 * server's OpenAPI schema is dumped to ui/openapi.json. Then `npm run gen:api` writes schema.d.ts and each
 * interface below becomes an alias, e.g.
 *   export type ModelInfo = components["schemas"]["ModelResponse"];
 * Pages import only from this module, so that swap touches this file alone. snake_case as on the wire.
 */

// ---------- model / health (#2) ----------
export interface Health {
  status: string;
  model_loaded?: boolean;
  version?: string;
}

export interface ModelInfo {
  name: string;
  revision?: string | null;
  architecture: string;
  n_layers: number;
  d_model: number;
  vocab_size: number;
  device: string;
  dtype: string;
  hook_points: string[];
  /** bytes held by the weights (optional until the backend reports it) */
  memory_bytes?: number | null;
}

export interface LoadModelRequest {
  /** "default", a hub id, a local folder or a GGUF file */
  name: string;
  device?: string | null;
  dtype?: string | null;
}

export interface Corpus {
  name: string;
  size_bytes: number;
  n_tokens: number | null;
}

// ---------- training (#3) ----------
export type Architecture = "topk" | "standard" | "batchtopk" | "jumprelu";
export type HookKind = "resid_pre" | "resid_post" | "mlp_out" | "attn_out";
export type RunStatus = "queued" | "running" | "completed" | "failed" | "cancelled" | "interrupted";

export interface TrainingRequest {
  layer: number;
  hook: HookKind;
  architecture: Architecture;
  d_sae: number;
  k?: number | null;
  l1_coefficient?: number | null;
  n_tokens: number;
  corpus?: string | null;
}

export interface TrainingProgress {
  step: number;
  total_steps: number;
  tokens_seen: number;
  total_tokens: number;
  tokens_per_s: number | null;
  eta_s: number | null;
}

export interface TrainingMetrics {
  loss: number | null;
  mse?: number | null;
  fvu: number | null;
  l0: number | null;
  dead_fraction: number | null;
  ce_loss_recovered?: number | null;
}

/** one row of metric history; also the shape of a `training_progress` WS message's metrics */
export interface MetricPoint extends TrainingMetrics {
  step: number;
  tokens_seen?: number;
}

export interface TrainingRun {
  run_id: string;
  status: RunStatus;
  config: TrainingRequest;
  created_at?: string | null;
  finished_at?: string | null;
  progress?: TrainingProgress | null;
  metrics?: TrainingMetrics | null;
  sae_id?: string | null;
  error?: string | null;
}

export interface TrainingRunDetail extends TrainingRun {
  history: MetricPoint[];
}

export interface StartTrainingResponse {
  run_id: string;
  status: RunStatus;
}

// ---------- SAEs and features (#3, #4) ----------
export interface SaeInfo {
  sae_id: string;
  model_name: string;
  hook_name: string;
  layer: number;
  d_in: number;
  d_sae: number;
  architecture: string;
  k?: number | null;
  created_at?: string | null;
  run_id?: string | null;
  metrics?: TrainingMetrics | null;
  /** "none" | "running" | "done" | "failed" */
  analysis_status?: string | null;
}

export interface FeatureSummary {
  index: number;
  label: string;
  density: number;
  max_activation: number;
  mean_activation?: number | null;
  top_tokens: string[];
  starred?: boolean;
}

export interface Page<T> {
  items: T[];
  total: number;
  offset: number;
  limit: number;
}

/** server-side sort key; a leading "-" sorts descending */
export type FeatureSort =
  | "index" | "-index" | "density" | "-density" | "max_activation" | "-max_activation" | "label" | "-label";

export interface FeatureQuery {
  offset?: number;
  limit?: number;
  sort?: FeatureSort;
  q?: string;
}

/** one context window: tokens with this feature's activation on each */
export interface Context {
  tokens: string[];
  activations: number[];
}

export interface QuantileBucket {
  /** human-readable range, e.g. "0.40–0.60 of max" */
  label: string;
  examples: Context[];
}

export interface HistogramData {
  /** n+1 bin edges for n counts */
  edges: number[];
  counts: number[];
}

export interface TokenValue {
  token: string;
  value: number;
}

export interface Neighbour {
  index: number;
  label: string;
  /** cosine similarity of decoder directions, or co-activation score */
  score: number;
}

export interface FeatureDetail extends FeatureSummary {
  notes: string;
  top_contexts: Context[];
  quantiles: QuantileBucket[];
  histogram: HistogramData;
  logit_histogram?: HistogramData | null;
  top_positive_logits: TokenValue[];
  top_negative_logits: TokenValue[];
  neighbours: Neighbour[];
  coactive?: Neighbour[];
}

export interface FeatureUpdate {
  label?: string;
  notes?: string;
  starred?: boolean;
}

export interface ActivationsRequest {
  text: string;
  features?: number[];
  top_k?: number;
}

export interface ActivationsResponse {
  tokens: string[];
  features: { index: number; label: string; activations: number[] }[];
}

// ---------- patches and inference (#5, #9) ----------
export type PatchMode = "ablate" | "scale" | "steer" | "clamp";

export interface PatchCreate {
  sae_id: string;
  features: number[];
  mode: PatchMode;
  strength: number;
  name?: string;
  enabled?: boolean;
}

export interface Patch extends PatchCreate {
  id: string;
  name: string;
  enabled: boolean;
  hook_name?: string;
  created_at?: string | null;
}

export interface PatchUpdate {
  strength?: number;
  enabled?: boolean;
  name?: string;
}

export interface TokenProb {
  token: string;
  id: number;
  probability: number;
  logit: number;
}

export interface TokenMove {
  token: string;
  id: number;
  original_probability: number;
  patched_probability: number;
  delta: number;
}

export interface InferenceRequest {
  text: string;
  top_k?: number;
  patch_ids?: string[] | null;
}

export interface InferenceResponse {
  original: TokenProb[];
  patched: TokenProb[];
  moved: TokenMove[];
  kl: number;
}

export interface GenerateRequest {
  text: string;
  max_new_tokens?: number;
  patch_ids?: string[] | null;
  temperature?: number;
  seed?: number | null;
}

export interface GenerateResponse {
  original: string;
  patched: string;
}

export interface EvaluateRequest {
  texts: string[];
  target_tokens: string[];
}

export interface EvaluateResponse {
  results: { text: string; before: number; after: number }[];
  mean_before: number;
  mean_after: number;
}

// ---------- provenance (#6) ----------
export interface ProvNode {
  id: string;
  layer: number;
  feature: number;
  sae_id?: string | null;
  label: string;
  activation?: number | null;
  /** "target" | "feature" | "logit" */
  kind?: string;
}

export interface ProvEdge {
  source: string;
  target: string;
  weight: number;
  virtual_weight?: number | null;
  attribution?: number | null;
}

export interface EdgeValidation {
  source: string;
  target: string;
  predicted: number;
  actual: number;
}

export interface ProvenanceQuery {
  sae_id: string;
  feature: number;
  depth?: number;
  prompt?: string;
  top_k?: number;
}

export interface ProvenanceGraphData {
  nodes: ProvNode[];
  edges: ProvEdge[];
  validation?: { edges: EdgeValidation[]; correlation: number | null } | null;
}

// ---------- contrast (#9) ----------
export interface ContrastRequest {
  positive: string[];
  negative: string[];
  position: "last" | "all" | "max";
  top_n: number;
}

export interface ContrastFeature {
  index: number;
  label: string;
  top_tokens: string[];
  mean_diff: number;
  effect_size: number;
  positive_rate: number;
  negative_rate: number;
}

export interface ContrastResponse {
  features: ContrastFeature[];
}
