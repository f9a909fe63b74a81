import { request, requestRaw, type Query } from "./client";
import { uploadWithProgress, type UploadProgress } from "./upload";
import type * as T from "./types";

const enc = encodeURIComponent;

/** A file download: the body as a Blob and the server's file name (Content-Disposition). */
async function download(method: string, path: string, fallback: string, query?: Query) {
  const res = await requestRaw(method, path, { query });
  const cd = res.headers.get("Content-Disposition") ?? "";
  const m = /filename="?([^";]+)"?/.exec(cd);
  return { blob: await res.blob(), filename: m?.[1] ?? fallback };
}

/** Every REST call the pages make, one function per endpoint. */
export const api = {
  health: () => request<T.Health>("GET", "/api/health"),

  getModel: () => request<T.ModelInfo>("GET", "/api/model"),
  loadModel: (body: T.LoadModelRequest) => request<T.ModelInfo>("POST", "/api/model", { body }),

  listCorpora: () => request<T.Corpus[]>("GET", "/api/corpora"),
  uploadCorpus: (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request<T.Corpus>("POST", "/api/corpora", { form });
  },
  /** the same upload through XMLHttpRequest, reporting the bytes sent */
  uploadCorpusTracked: (file: File, onProgress?: (p: UploadProgress) => void, signal?: AbortSignal) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return uploadWithProgress<T.Corpus>("/api/corpora", form, onProgress, signal);
  },
  registerCorpus: (body: T.RegisterCorpus) => request<T.Corpus>("POST", "/api/corpora/register", { body }),

  startTraining: (body: T.TrainingRequest) => request<T.StartTrainingResponse>("POST", "/api/training", { body }),
  listRuns: () => request<T.TrainingRun[]>("GET", "/api/training"),
  getRun: (runId: string) => request<T.TrainingRunDetail>("GET", `/api/training/${enc(runId)}`),
  cancelRun: (runId: string) => request<T.TrainingRun>("POST", `/api/training/${enc(runId)}/cancel`),
  resumeRun: (runId: string) => request<T.TrainingRun>("POST", `/api/training/${enc(runId)}/resume`),

  listSaes: () => request<T.SaeInfo[]>("GET", "/api/saes"),
  getSae: (saeId: string) => request<T.SaeDetail>("GET", `/api/saes/${enc(saeId)}`),
  exportSae: (saeId: string) => download("GET", `/api/saes/${enc(saeId)}/export`, `sae-${saeId}.zip`),
  importSae: (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request<T.SaeInfo>("POST", "/api/saes/import", { form });
  },
  mapJob: (saeId: string) => request<T.UnderstandingJob | null>("GET", `/api/saes/${enc(saeId)}/map/job`),
  getMap: (saeId: string) => request<T.FeatureMapData>("GET", `/api/saes/${enc(saeId)}/map`),
  startMap: (saeId: string, body: Partial<T.MapRequest>) =>
    request<T.UnderstandingJob>("POST", `/api/saes/${enc(saeId)}/map`, { body }),
  cancelMap: (saeId: string) => request<T.UnderstandingJob>("POST", `/api/saes/${enc(saeId)}/map/cancel`),
  evalsJob: (saeId: string) => request<T.UnderstandingJob | null>("GET", `/api/saes/${enc(saeId)}/evals/job`),
  getEvals: (saeId: string) => request<T.EvalResult>("GET", `/api/saes/${enc(saeId)}/evals`),
  startEvals: (saeId: string, body: Partial<T.EvalRequest>) =>
    request<T.UnderstandingJob>("POST", `/api/saes/${enc(saeId)}/evals`, { body }),
  cancelEvals: (saeId: string) => request<T.UnderstandingJob>("POST", `/api/saes/${enc(saeId)}/evals/cancel`),
  compareEvals: (saeIds: string[]) =>
    request<T.EvalCompare>("GET", "/api/evals/compare", { query: { sae_ids: saeIds.join(",") } }),
  analysisStatus: (saeId: string) => request<T.AnalysisStatus>("GET", `/api/saes/${enc(saeId)}/analysis`),
  startAnalysis: (saeId: string, body: T.AnalysisRequest | null) =>
    request<T.AnalysisStatus>("POST", `/api/saes/${enc(saeId)}/analysis`, { body: body ?? {} }),
  listFeatures: (saeId: string, query: T.FeatureQuery, signal?: AbortSignal) =>
    request<T.FeaturePage>("GET", `/api/saes/${enc(saeId)}/features`, { query: { ...query }, signal }),
  getFeature: (saeId: string, index: number) =>
    request<T.FeatureDetail>("GET", `/api/saes/${enc(saeId)}/features/${index}`),
  updateFeature: (saeId: string, index: number, body: T.FeatureUpdate) =>
    request<T.FeatureDetail>("PATCH", `/api/saes/${enc(saeId)}/features/${index}`, { body }),
  explainFeatures: (saeId: string, body: T.ExplainRequest) =>
    request<T.ExplainJob>("POST", `/api/saes/${enc(saeId)}/explanations`, { body }),
  explainJob: (saeId: string) => request<T.ExplainJob | null>("GET", `/api/saes/${enc(saeId)}/explanations/job`),
  cancelExplain: (saeId: string) => request<T.ExplainJob>("POST", `/api/saes/${enc(saeId)}/explanations/cancel`),
  resumeExplain: (saeId: string) => request<T.ExplainJob>("POST", `/api/saes/${enc(saeId)}/explanations/resume`),
  activations: (saeId: string, body: T.ActivationsRequest) =>
    request<T.ActivationsResponse>("POST", `/api/saes/${enc(saeId)}/activations`, { body }),
  contrast: (saeId: string, body: T.ContrastRequest) =>
    request<T.ContrastResponse>("POST", `/api/saes/${enc(saeId)}/contrast`, { body }),
  contrastPatch: (saeId: string, body: T.ContrastPatchRequest) =>
    request<T.Patch>("POST", `/api/saes/${enc(saeId)}/contrast/patch`, { body }),

  listPatches: () => request<T.Patch[]>("GET", "/api/patches"),
  createPatch: (body: T.PatchCreate) => request<T.Patch>("POST", "/api/patches", { body }),
  updatePatch: (id: string, body: T.PatchUpdate) => request<T.Patch>("PATCH", `/api/patches/${enc(id)}`, { body }),
  deletePatch: (id: string) => request<void>("DELETE", `/api/patches/${enc(id)}`),
  exportPatch: (id: string, format: "peft" | "native") =>
    download("GET", `/api/patches/${enc(id)}/export`, `patch-${id}-${format}.zip`, { format }),
  importPatch: (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request<T.Patch>("POST", "/api/patches/import", { form });
  },
  evaluatePatch: (id: string, body: T.EvaluateRequest) =>
    request<T.EvaluateResponse>("POST", `/api/patches/${enc(id)}/evaluate`, { body }),

  inference: (body: T.InferenceRequest) => request<T.InferenceResponse>("POST", "/api/inference", { body }),
  generate: (body: T.GenerateRequest) => request<T.GenerateResponse>("POST", "/api/generate", { body }),

  provenanceUpstream: (saeId: string, depth: number) =>
    request<T.ProvenanceUpstream>("GET", "/api/provenance/upstream", { query: { sae_id: saeId, depth } }),
  provenance: (q: T.ProvenanceQuery) =>
    request<T.ProvenanceGraphData>("GET", "/api/provenance", { query: { ...q } }),

  listTranscoderSets: () => request<T.TranscoderSet[]>("GET", "/api/transcoders"),
  trainTranscoders: (body: T.TranscoderTrainRequest) =>
    request<T.TranscoderTrainStarted>("POST", "/api/transcoders/train", { body }),
  importTranscoders: (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request<T.TranscoderSetDetail>("POST", "/api/transcoders/import", { form });
  },
  listCircuits: () => request<T.Circuit[]>("GET", "/api/circuits"),
  startCircuit: (body: T.CircuitRequest) => request<T.CircuitStarted>("POST", "/api/circuits", { body }),
  getCircuit: (id: string, nodeThreshold?: number) =>
    request<T.CircuitDetail>("GET", `/api/circuits/${enc(id)}`, { query: { node_threshold: nodeThreshold } }),
  cancelCircuit: (id: string) => request<T.CircuitStarted>("POST", `/api/circuits/${enc(id)}/cancel`),
  intervene: (id: string, body: T.InterveneRequest) =>
    request<T.InterveneResponse>("POST", `/api/circuits/${enc(id)}/intervene`, { body }),
  nodeToPatch: (id: string, node: number, body: T.NodePatchRequest) =>
    request<T.NodePatchResponse>("POST", `/api/circuits/${enc(id)}/nodes/${node}/patch`, { body }),
  exportCircuit: (id: string, format: "circuit-tracer" | "workbench") =>
    download("GET", `/api/circuits/${enc(id)}/export`, `${id}-${format}.json`, { format }),

  listBehaviourJobs: () => request<T.BehaviourJobSummary[]>("GET", "/api/behaviours"),
  removeBehaviour: (body: T.RemoveBehaviourRequest) =>
    request<T.BehaviourJobStarted>("POST", "/api/behaviours/remove", { body }),
  getBehaviourJob: (id: string) => request<T.BehaviourJob>("GET", `/api/behaviours/${enc(id)}`),
  listBehaviourCandidates: (id: string) =>
    request<T.BehaviourCandidate[]>("GET", `/api/behaviours/${enc(id)}/candidates`),
  cancelBehaviourJob: (id: string) => request<T.BehaviourJobStarted>("POST", `/api/behaviours/${enc(id)}/cancel`),
  resumeBehaviourJob: (id: string) => request<T.BehaviourJobStarted>("POST", `/api/behaviours/${enc(id)}/resume`),
  behaviourCandidatePatch: (id: string, index: number, body: T.CandidatePatchRequest) =>
    request<T.Patch[]>("POST", `/api/behaviours/${enc(id)}/candidates/${index}/patch`, { body }),
  exportBehaviourJob: (id: string) => download("GET", `/api/behaviours/${enc(id)}/export`, `${id}-peft.zip`),
};

/** Save a Blob through a temporary link (used for patch export). */
export function downloadBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
