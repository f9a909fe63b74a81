import { useEffect } from "react";
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useSocket } from "../ws/context";
import type { WorkbenchSocket } from "../ws/socket";
import type { JobMsg, ServerMessage } from "../ws/messages";
import { queryKeys } from "./queryKeys";
import type { AnalysisStatus, BehaviourCandidateRow, Corpus, ExplainJob, ModelInfo, TrainingRun, TrainingRunDetail } from "./types";

/**
 * What each server event changes in the query cache. Invalidation marks the keys stale and refetches those a
 * mounted component reads; the others are read again when a page next mounts.
 *
 * - training_progress: the run list when it does not know the run yet; the run's detail while it says "queued"
 *   (the live numbers themselves stay in the Train page: the socket streams them, the cache holds REST answers)
 * - training_done / _failed / _cancelled: the run list, every run detail, the SAE list and the transcoder sets (a run
 *   registers SAEs or a transcoder set)
 * - analysis_progress: the SAE's cached analysis status says "running"
 * - analysis_done: the SAE's analysis status; when it finished ("done") also its feature listings and details
 * - job (kind corpus_count, job id "count_<corpus id>"): the cached corpus's byte progress while it runs; the corpus
 *   list when the count ends (its docs/tokens or error) or names a corpus the list does not know
 * - job (kind circuit) leaving "running": the circuit list and that circuit's detail
 * - job (kind explain): the cached explanation job with that id takes done/total/status (errors counts the
 *   per-feature results that name an error kind) and the explained feature's detail reloads; when the job ends,
 *   the job, the SAE's feature listings and details reload; a job no cached one knows reloads every SAE's job
 * - job (kind map / evals): the SAEs' map / evaluation job status; leaving "running" also the map / evaluation
 * - job (kind behaviour_removal): the job list and that job's detail (phase, best so far); leaving "running" also
 *   its candidates (they gain their Pareto flags) and, when done, the patches (the job made some)
 * - behaviour_candidate: appended to that job's cached candidates (when cached and not there yet)
 * - model_loaded: the model, the health line, the SAE list and the patches (which apply to the new model)
 * - hello (every connect): the model, when the server's model status differs from the cached one
 */
export function applyServerMessage(client: QueryClient, msg: ServerMessage): void {
  // a stream of events may arrive while a refetch runs: let it finish instead of restarting it each time
  const invalidate = (queryKey: readonly unknown[]) => void client.invalidateQueries({ queryKey }, { cancelRefetch: false });
  switch (msg.type) {
    case "training_progress": {
      const runs = client.getQueryData<TrainingRun[]>(queryKeys.runs.list());
      if (!runs?.some((r) => r.id === msg.run_id)) invalidate(queryKeys.runs.list());
      const detail = client.getQueryData<TrainingRunDetail>(queryKeys.runs.detail(msg.run_id));
      if (detail?.status === "queued") invalidate(queryKeys.runs.detail(msg.run_id));
      return;
    }
    case "training_done":
    case "training_failed":
    case "training_cancelled":
      invalidate(queryKeys.runs.all());
      invalidate(queryKeys.saes());
      invalidate(queryKeys.transcoderSets()); // a transcoder run registers a set
      return;
    case "job":
      if (msg.kind === "corpus_count") {
        applyCorpusCount(client, msg);
        return;
      }
      // a circuit job that ends changes its row (and, when done, brings its graph)
      if (msg.kind === "circuit" && msg.status !== "running") {
        invalidate(queryKeys.circuits.list());
        invalidate(queryKeys.circuits.detailAll(msg.job_id));
      }
      if (msg.kind === "explain") applyExplainJob(client, msg, invalidate);
      // a feature-map or evaluation job: its SAE's job status follows; when it ends, the result too
      if (msg.kind === "map" || msg.kind === "evals") {
        // the event names its job, not its SAE: every SAE's job key of that kind is asked again (one each)
        const job = msg.kind === "map" ? "map-job" : "evals-job";
        const ended = msg.status !== "running";
        void client.invalidateQueries(
          { queryKey: ["sae"], predicate: (q) => q.queryKey[2] === job || (ended && q.queryKey[2] === msg.kind) },
          { cancelRefetch: false },
        );
        if (msg.kind === "evals" && ended) invalidate(["evals-compare"]);
      }
      if (msg.kind === "behaviour_removal") {
        invalidate(queryKeys.behaviours.list());
        invalidate(queryKeys.behaviours.detail(msg.job_id));
        if (msg.status !== "running" && msg.status !== "queued") invalidate(queryKeys.behaviours.candidates(msg.job_id));
        if (msg.status === "done") invalidate(queryKeys.patches());
      }
      return;
    case "behaviour_candidate": {
      const { type: _type, ts: _ts, job_id, best_index: _best, ...row } = msg;
      client.setQueryData<BehaviourCandidateRow[]>(queryKeys.behaviours.candidates(job_id), (rows) =>
        rows && !rows.some((r) => r.index === row.index) ? [...rows, row] : rows);
      return;
    }
    case "analysis_progress": {
      const key = queryKeys.sae.analysis(msg.sae_id);
      const status = client.getQueryData<AnalysisStatus>(key);
      if (status && status.status !== "running") client.setQueryData<AnalysisStatus>(key, { ...status, status: "running" });
      return;
    }
    case "analysis_done":
      invalidate(queryKeys.sae.analysis(msg.sae_id));
      if (msg.status === "done") {
        invalidate(queryKeys.sae.featureLists(msg.sae_id));
        invalidate(queryKeys.sae.features(msg.sae_id));
      }
      return;
    case "model_loaded":
      invalidate(queryKeys.model());
      invalidate(queryKeys.health());
      invalidate(queryKeys.saes());
      invalidate(queryKeys.patches());
      return;
    case "hello": {
      const model = client.getQueryData<ModelInfo>(queryKeys.model());
      if (model && model.status !== msg.model_status) invalidate(queryKeys.model());
      return;
    }
    default:
      return;
  }
}

const isExplainJobKey = (key: readonly unknown[]) => key[0] === "sae" && key[2] === "explain-job";

/** Per-feature results come as detail "feature <index>: <error kind or 'explained'>" (features/explanations.py). */
const FEATURE_RESULT = /^feature (\d+): (.+)$/;

function applyExplainJob(client: QueryClient, msg: JobMsg, invalidate: (key: readonly unknown[]) => void): void {
  const hit = client
    .getQueriesData<ExplainJob | null>({ predicate: (q) => isExplainJobKey(q.queryKey) })
    .find(([, job]) => job?.id === msg.job_id);
  if (!hit) {
    void client.invalidateQueries({ predicate: (q) => isExplainJobKey(q.queryKey) }, { cancelRefetch: false });
    return;
  }
  const [key, job] = hit as [readonly unknown[], ExplainJob];
  const saeId = job.sae_id;
  const result = msg.status === "running" && msg.detail ? FEATURE_RESULT.exec(msg.detail) : null;
  client.setQueryData<ExplainJob>(key, {
    ...job, status: msg.status as ExplainJob["status"], done: msg.done, total: msg.total,
    errors: job.errors + (result && result[2] !== "explained" ? 1 : 0),
  });
  if (result) invalidate(queryKeys.sae.feature(saeId, Number(result[1])));
  if (msg.status !== "running" && msg.status !== "queued") {
    invalidate(key);
    invalidate(queryKeys.sae.featureLists(saeId));
    invalidate(queryKeys.sae.features(saeId));
  }
}

/** A corpus_count job event: its job id is "count_" + the corpus id, done/total count bytes read. */
function applyCorpusCount(client: QueryClient, msg: JobMsg): void {
  const key = queryKeys.corpora();
  const corpusId = msg.job_id.startsWith("count_") ? msg.job_id.slice("count_".length) : msg.job_id;
  const list = client.getQueryData<Corpus[]>(key);
  const known = list?.some((c) => c.id === corpusId);
  if (!known || (msg.status !== "running" && msg.status !== "queued")) {
    void client.invalidateQueries({ queryKey: key }, { cancelRefetch: false });
    return;
  }
  // the counter's note reads "<tokens> tokens in <documents> documents"
  const m = /^(\d+) tokens in (\d+) documents/.exec(msg.detail ?? "");
  client.setQueryData<Corpus[]>(key, (old) =>
    old?.map((c) =>
      c.id !== corpusId ? c : {
        ...c,
        status: "counting",
        progress: {
          documents: m ? Number(m[2]) : (c.progress?.documents ?? 0), tokens: m ? Number(m[1]) : (c.progress?.tokens ?? 0),
          bytes_done: msg.done, bytes_total: msg.total || (c.progress?.bytes_total ?? c.size_bytes ?? 0),
        },
      },
    ),
  );
}

/**
 * Keep `client` in step with `socket`: each server message goes through applyServerMessage, and after every
 * reconnect every query is invalidated (anything may have changed while the socket was down). Returns the
 * function that stops it.
 */
export function syncQueriesWithSocket(socket: WorkbenchSocket, client: QueryClient): () => void {
  const offMessages = socket.subscribe((msg) => applyServerMessage(client, msg));
  const offResync = socket.onResync(() => void client.invalidateQueries());
  return () => {
    offMessages();
    offResync();
  };
}

/** syncQueriesWithSocket for the provided socket and QueryClient, for the lifetime of the calling component. */
export function useSocketQuerySync(): void {
  const socket = useSocket();
  const client = useQueryClient();
  useEffect(() => syncQueriesWithSocket(socket, client), [socket, client]);
}
