import type { FeatureSort } from "./types";

/**
 * Every TanStack Query key of the app, one function per resource, so that invalidation (after a mutation, on a
 * WebSocket event, after a reconnect) names the same keys the hooks in queries.ts read.
 *
 * Keys are hierarchical: invalidating a prefix invalidates everything under it. The roots are separate on
 * purpose: `["saes"]` is the SAE list only, while everything about one SAE lives under `["sae", id]`, so a new
 * SAE (training_done) does not refetch every feature page, and a finished analysis does not refetch the list.
 */
export const queryKeys = {
  health: () => ["health"] as const,
  model: () => ["model"] as const,
  corpora: () => ["corpora"] as const,

  runs: {
    /** the run list and every run detail */
    all: () => ["runs"] as const,
    list: () => ["runs", "list"] as const,
    detail: (runId: string) => ["runs", "detail", runId] as const,
  },

  /** the list of registered SAEs (trained and imported) */
  saes: () => ["saes"] as const,
  /** the SAEs below one SAE and the layers that have none (provenance); under ["saes"] so that a new SAE
   * (training_done invalidates the list) refreshes it too */
  upstream: (saeId: string, depth: number) => ["saes", "upstream", saeId, depth] as const,

  sae: {
    /** everything about one SAE: analysis status, feature pages, feature details */
    all: (saeId: string) => ["sae", saeId] as const,
    analysis: (saeId: string) => ["sae", saeId, "analysis"] as const,
    /** the feature map and its latest job */
    map: (saeId: string) => ["sae", saeId, "map"] as const,
    mapJob: (saeId: string) => ["sae", saeId, "map-job"] as const,
    /** the latest evaluation and its job */
    evals: (saeId: string) => ["sae", saeId, "evals"] as const,
    evalsJob: (saeId: string) => ["sae", saeId, "evals-job"] as const,
    /** every (sort, q) listing of the SAE's features */
    featureLists: (saeId: string) => ["sae", saeId, "features"] as const,
    featureList: (saeId: string, sort: FeatureSort, q: string, hideDegenerate = false) =>
      ["sae", saeId, "features", { sort, q, hideDegenerate }] as const,
    /** the SAE's latest explanation job (null when none ran) */
    explainJob: (saeId: string) => ["sae", saeId, "explain-job"] as const,
    /** every feature detail of the SAE */
    features: (saeId: string) => ["sae", saeId, "feature"] as const,
    feature: (saeId: string, index: number) => ["sae", saeId, "feature", index] as const,
    /** the activations of some features on one text (the Patch console's strips) */
    textActivations: (saeId: string, text: string, features: number[]) =>
      ["sae", saeId, "activations", { text, features }] as const,
  },

  patches: () => ["patches"] as const,

  /** headline evaluation numbers of several SAEs side by side */
  evalsCompare: (saeIds: string[]) => ["evals-compare", saeIds] as const,

  /** transcoder sets (trained and imported) */
  transcoderSets: () => ["transcoder-sets"] as const,

  circuits: {
    /** the circuit list and every circuit detail */
    all: () => ["circuits"] as const,
    list: () => ["circuits", "list"] as const,
    /** one circuit, every pruning of it */
    detailAll: (id: string) => ["circuits", "detail", id] as const,
    detail: (id: string, nodeThreshold: number | null) => ["circuits", "detail", id, { nodeThreshold }] as const,
  },
  behaviours: {
    /** the job list and everything about every job */
    all: () => ["behaviours"] as const,
    list: () => ["behaviours", "list"] as const,
    /** one job: its detail and its candidates */
    job: (id: string) => ["behaviours", "job", id] as const,
    detail: (id: string) => ["behaviours", "job", id, "detail"] as const,
    candidates: (id: string) => ["behaviours", "job", id, "candidates"] as const,
  },
};
