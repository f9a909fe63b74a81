import { useEffect } from "react";
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useSocket } from "../ws/context";
import type { WorkbenchSocket } from "../ws/socket";
import type { ServerMessage } from "../ws/messages";
import { queryKeys } from "./queryKeys";
import type { AnalysisStatus, Corpus, ModelInfo, TrainingRun, TrainingRunDetail } from "./types";
import type { JobMsg } from "../ws/messages";

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
      return;
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
