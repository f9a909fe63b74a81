import { useMutation, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { api, downloadBlob } from "./endpoints";
import { queryKeys } from "./queryKeys";
import type * as T from "./types";
import type { UploadProgress } from "./upload";

/**
 * Everything the pages ask the server to do, one hook per action (TanStack Query mutations: `isPending` while
 * it runs, `error` until the next try; never retried). A mutation writes the server's answer into the cache
 * where it is the new state of a cached resource, and invalidates the keys whose server state it changed.
 *
 * Computations the user asks for (inference, generation, contrast, provenance, effect checks, activations on
 * a text) are mutations too: they run when asked, are not cached, and change no other key.
 */

/** Replace one patch in the cached list with the server's answer. */
function putPatch(qc: QueryClient, p: T.Patch) {
  qc.setQueryData<T.Patch[]>(queryKeys.patches(), (list) => list?.map((x) => (x.id === p.id ? p : x)));
}

/** Add a new patch to the cached list at once, then ask the server for the list it keeps. */
function addPatch(qc: QueryClient, p: T.Patch) {
  qc.setQueryData<T.Patch[]>(queryKeys.patches(), (list) => (list ? [...list.filter((x) => x.id !== p.id), p] : list));
  return qc.invalidateQueries({ queryKey: queryKeys.patches() });
}

// ---------- model, corpora ----------

/** POST /api/model: the cached model shows "loading" while it runs, the server's answer after. */
export function useLoadModel() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.LoadModelRequest) => api.loadModel(body),
    onMutate: async (body) => {
      await qc.cancelQueries({ queryKey: queryKeys.model() });
      qc.setQueryData<T.ModelInfo>(queryKeys.model(), (m) => (m ? { ...m, status: "loading", requested: body.name } : m));
    },
    onSuccess: (info) => {
      qc.setQueryData(queryKeys.model(), info);
      // which patches apply and what the health line says depend on the model
      void qc.invalidateQueries({ queryKey: queryKeys.health() });
      void qc.invalidateQueries({ queryKey: queryKeys.patches() });
    },
    onError: () => qc.invalidateQueries({ queryKey: queryKeys.model() }),
  });
}

export function useUploadCorpus() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (file: File) => api.uploadCorpus(file),
    onSuccess: () => qc.invalidateQueries({ queryKey: queryKeys.corpora() }),
  });
}

/**
 * Upload a corpus through XMLHttpRequest so that `onProgress` sees the bytes sent (fetch reports none); the new
 * corpus (status "counting") goes into the cached list at once, and the list is reloaded.
 */
export function useUploadCorpusTracked() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ file, onProgress }: { file: File; onProgress?: (p: UploadProgress) => void }) =>
      api.uploadCorpusTracked(file, onProgress),
    onSuccess: (c) => addCorpus(qc, c),
  });
}

/** POST /api/corpora/register: a path under IWB_DATA_DIRS or a cached hub dataset. */
export function useRegisterCorpus() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.RegisterCorpus) => api.registerCorpus(body),
    onSuccess: (c) => addCorpus(qc, c),
  });
}

function addCorpus(qc: QueryClient, c: T.Corpus) {
  qc.setQueryData<T.Corpus[]>(queryKeys.corpora(), (list) => (list ? [...list.filter((x) => x.id !== c.id), c] : list));
  return qc.invalidateQueries({ queryKey: queryKeys.corpora() });
}

// ---------- training ----------

export function useStartTraining() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.TrainingRequest) => api.startTraining(body),
    onSuccess: () => qc.invalidateQueries({ queryKey: queryKeys.runs.list() }),
  });
}

/** Cancel or resume a run; the run list and its detail are read again either way. */
export function useRunAction(action: "cancel" | "resume") {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (runId: string) => (action === "cancel" ? api.cancelRun(runId) : api.resumeRun(runId)),
    onSettled: () => qc.invalidateQueries({ queryKey: queryKeys.runs.all() }),
  });
}

// ---------- SAEs, analysis, features ----------

export function useImportSae() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (file: File) => api.importSae(file),
    onSuccess: () => qc.invalidateQueries({ queryKey: queryKeys.saes() }),
  });
}

/** GET /api/saes/{id}/export, saved through the browser's download. */
export function useExportSae() {
  return useMutation({
    mutationFn: async (saeId: string) => {
      const { blob, filename } = await api.exportSae(saeId);
      downloadBlob(blob, filename);
    },
  });
}

export function useStartAnalysis(saeId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.AnalysisRequest | null) => api.startAnalysis(saeId, body),
    onSuccess: (status) => qc.setQueryData(queryKeys.sae.analysis(saeId), status),
  });
}

/** POST .../explanations: the answer is the SAE's new latest job. */
export function useStartExplain(saeId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.ExplainRequest) => api.explainFeatures(saeId, body),
    onSuccess: (job) => qc.setQueryData(queryKeys.sae.explainJob(saeId), job),
  });
}

/** Cancel the running explanation job (it stops after the current feature) or resume the latest one. */
export function useExplainAction(saeId: string, action: "cancel" | "resume") {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => (action === "cancel" ? api.cancelExplain(saeId) : api.resumeExplain(saeId)),
    onSuccess: (job) => qc.setQueryData(queryKeys.sae.explainJob(saeId), job),
    onError: () => qc.invalidateQueries({ queryKey: queryKeys.sae.explainJob(saeId) }),
  });
}

/** PATCH a feature's label, notes or star: the detail takes the answer, the listings (labels, stars) reload. */
export function useUpdateFeature(saeId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ index, body }: { index: number; body: T.FeatureUpdate }) => api.updateFeature(saeId, index, body),
    onSuccess: (f) => {
      qc.setQueryData(queryKeys.sae.feature(saeId, f.index), f);
      return qc.invalidateQueries({ queryKey: queryKeys.sae.featureLists(saeId) });
    },
  });
}

export function useActivations(saeId: string) {
  return useMutation({ mutationFn: (body: T.ActivationsRequest) => api.activations(saeId, body) });
}

export function useContrast() {
  return useMutation({
    mutationFn: ({ saeId, body }: { saeId: string; body: T.ContrastRequest }) => api.contrast(saeId, body),
  });
}

/** One patch over the chosen contrast features; the patch list gains it. */
export function useContrastPatch() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ saeId, body }: { saeId: string; body: T.ContrastPatchRequest }) => api.contrastPatch(saeId, body),
    onSuccess: (p) => addPatch(qc, p),
  });
}

// ---------- patches ----------

export function useCreatePatch() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: (body: T.PatchCreate) => api.createPatch(body), onSuccess: (p) => addPatch(qc, p) });
}

/** PATCH one patch (enable, strength): its answer replaces it in the list; the others do not change. */
export function useUpdatePatch() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: T.PatchUpdate }) => api.updatePatch(id, body),
    onSuccess: (p) => putPatch(qc, p),
  });
}

export function useDeletePatch() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.deletePatch(id),
    onSuccess: (_void, id) => {
      qc.setQueryData<T.Patch[]>(queryKeys.patches(), (list) => list?.filter((x) => x.id !== id));
      return qc.invalidateQueries({ queryKey: queryKeys.patches() });
    },
  });
}

export function useImportPatch() {
  const qc = useQueryClient();
  return useMutation({ mutationFn: (file: File) => api.importPatch(file), onSuccess: (p) => addPatch(qc, p) });
}

/** GET /api/patches/{id}/export in PEFT or the native format, saved through the browser's download. */
export function useExportPatch() {
  return useMutation({
    mutationFn: async ({ id, format }: { id: string; format: "peft" | "native" }) => {
      const { blob, filename } = await api.exportPatch(id, format);
      downloadBlob(blob, filename);
    },
  });
}

/** Evaluate one patch on several text sets at once; the answers come back in the order of `requests`. */
export function useEvaluatePatch() {
  return useMutation({
    mutationFn: ({ patchId, requests }: { patchId: string; requests: T.EvaluateRequest[] }) =>
      Promise.all(requests.map((body) => api.evaluatePatch(patchId, body))),
  });
}

// ---------- inference, provenance ----------

export function useInference() {
  return useMutation({ mutationFn: (body: T.InferenceRequest) => api.inference(body) });
}

export function useGenerate() {
  return useMutation({ mutationFn: (body: T.GenerateRequest) => api.generate(body) });
}

export function useProvenance() {
  return useMutation({ mutationFn: (q: T.ProvenanceQuery) => api.provenance(q) });
}

// ---------- transcoders and circuits ----------

export function useTrainTranscoders() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.TranscoderTrainRequest) => api.trainTranscoders(body),
    onSuccess: () => qc.invalidateQueries({ queryKey: queryKeys.runs.list() }),
  });
}

export function useImportTranscoders() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (file: File) => api.importTranscoders(file),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: queryKeys.transcoderSets() });
      void qc.invalidateQueries({ queryKey: queryKeys.saes() });
    },
  });
}

export function useStartCircuit() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.CircuitRequest) => api.startCircuit(body),
    onSuccess: () => qc.invalidateQueries({ queryKey: queryKeys.circuits.list() }),
  });
}

export function useCancelCircuit() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.cancelCircuit(id),
    onSettled: () => qc.invalidateQueries({ queryKey: queryKeys.circuits.all() }),
  });
}

/** The output distribution before and after setting feature nodes (a computation: nothing cached changes). */
export function useIntervene(circuitId: string) {
  return useMutation({ mutationFn: (body: T.InterveneRequest) => api.intervene(circuitId, body) });
}

/** Send a feature node to the Patch console: the new patch joins the cached list. */
export function useNodeToPatch(circuitId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ node, body }: { node: number; body: T.NodePatchRequest }) => api.nodeToPatch(circuitId, node, body),
    onSuccess: (res) => addPatch(qc, res.patch),
  });
}

/** Start the feature-map job; the job key takes the answer, the map is fetched again when the job ends. */
export function useStartMap(saeId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: Partial<T.MapRequest>) => api.startMap(saeId, body),
    onSuccess: (job) => qc.setQueryData(queryKeys.sae.mapJob(saeId), job),
  });
}

/** Start the evaluation job (same pattern as useStartMap). */
export function useStartEvals(saeId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: Partial<T.EvalRequest>) => api.startEvals(saeId, body),
    onSuccess: (job) => qc.setQueryData(queryKeys.sae.evalsJob(saeId), job),
  });
}

/** Cancel the SAE's running feature-map or evaluation job (it stops at its next stage, the previous result
 * stays); the job key takes the answer, the `job` event with status cancelled follows. */
export function useCancelUnderstandingJob(saeId: string, kind: "map" | "evals") {
  const qc = useQueryClient();
  const key = kind === "map" ? queryKeys.sae.mapJob(saeId) : queryKeys.sae.evalsJob(saeId);
  return useMutation({
    mutationFn: () => (kind === "map" ? api.cancelMap(saeId) : api.cancelEvals(saeId)),
    onSuccess: (job) => qc.setQueryData(key, job),
    onError: () => qc.invalidateQueries({ queryKey: key }),
  });
}

// ---------- behaviour removal ----------

/** POST /api/behaviours/remove: the job list gains the new job. */
export function useRemoveBehaviour() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: T.RemoveBehaviourRequest) => api.removeBehaviour(body),
    onSuccess: () => qc.invalidateQueries({ queryKey: queryKeys.behaviours.list() }),
  });
}

/** Cancel or resume a behaviour-removal job; the list and that job are read again either way. */
export function useBehaviourJobAction(action: "cancel" | "resume") {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => (action === "cancel" ? api.cancelBehaviourJob(id) : api.resumeBehaviourJob(id)),
    onSettled: (_r, _e, id) => {
      void qc.invalidateQueries({ queryKey: queryKeys.behaviours.list() });
      return qc.invalidateQueries({ queryKey: queryKeys.behaviours.job(id) });
    },
  });
}

/** Make patches (one per SAE) from any evaluated candidate: they join the cached patch list. */
export function useBehaviourCandidatePatch(jobId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ index, enabled = true }: { index: number; enabled?: boolean }) =>
      api.behaviourCandidatePatch(jobId, index, { enabled }),
    onSuccess: (made) => {
      for (const p of made) qc.setQueryData<T.Patch[]>(queryKeys.patches(), (list) => (list ? [...list.filter((x) => x.id !== p.id), p] : list));
      return qc.invalidateQueries({ queryKey: queryKeys.patches() });
    },
  });
}

/** GET /api/behaviours/{id}/export (one PEFT LoRA adapter zip), saved through the browser's download. */
export function useExportBehaviour() {
  return useMutation({
    mutationFn: async (id: string) => {
      const { blob, filename } = await api.exportBehaviourJob(id);
      downloadBlob(blob, filename);
    },
  });
}
