import { keepPreviousData, useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { api } from "./endpoints";
import { queryKeys } from "./queryKeys";
import type { BehaviourCandidateRow, FeatureSort, TrainingRun } from "./types";

/**
 * Server state the pages read, one hook per resource (TanStack Query). The cache is kept current by the
 * mutations in mutations.ts (they write or invalidate the keys they change) and by socketSync.ts (server
 * events and reconnects). Errors are ApiError / TypeError: show them with errorText().
 *
 * Resources that change while a page shows them without a server event per change (a running training run, a
 * running analysis) are never fresh (staleTime 0): a page that mounts asks the server again, as it did before
 * the cache, and the socket streams the rest. Everything else uses the client's default staleTime.
 */

export function useHealth() {
  return useQuery({ queryKey: queryKeys.health(), queryFn: () => api.health() });
}

export function useModel() {
  return useQuery({ queryKey: queryKeys.model(), queryFn: () => api.getModel() });
}

export function useCorpora() {
  return useQuery({ queryKey: queryKeys.corpora(), queryFn: () => api.listCorpora() });
}

const newestFirst = (runs: TrainingRun[]) => [...runs].sort((a, b) => b.created_at - a.created_at);

/** All training runs, newest first (the cache keeps the server's order). */
export function useRuns() {
  return useQuery({ queryKey: queryKeys.runs.list(), queryFn: () => api.listRuns(), select: newestFirst, staleTime: 0 });
}

/** One run with its config, metrics and metric history; idle while `runId` is null. */
export function useRun(runId: string | null) {
  return useQuery({
    queryKey: queryKeys.runs.detail(runId ?? ""),
    queryFn: () => api.getRun(runId!),
    enabled: runId != null,
    staleTime: 0,
  });
}

export function useSaes() {
  return useQuery({ queryKey: queryKeys.saes(), queryFn: () => api.listSaes() });
}

export function useAnalysisStatus(saeId: string) {
  return useQuery({ queryKey: queryKeys.sae.analysis(saeId), queryFn: () => api.analysisStatus(saeId), staleTime: 0 });
}

/** the server caps a page at 500 */
export const FEATURE_PAGE = 500;

/**
 * The features of an SAE for one (sort, q, hide_degenerate), as an infinite query of pages of FEATURE_PAGE
 * (GET .../features?offset&limit&sort&q&hide_degenerate). Idle while `saeId` is undefined. `hasNextPage` is false once a page
 * reaches `total` or comes back empty.
 */
export function useFeaturePages(saeId: string | undefined, sort: FeatureSort, q: string, hideDegenerate = false) {
  return useInfiniteQuery({
    queryKey: queryKeys.sae.featureList(saeId ?? "", sort, q, hideDegenerate),
    queryFn: ({ pageParam, signal }) =>
      api.listFeatures(saeId!, {
        offset: pageParam, limit: FEATURE_PAGE, sort, q: q || undefined,
        hide_degenerate: hideDegenerate || undefined,
      }, signal),
    initialPageParam: 0,
    getNextPageParam: (last, _all, lastOffset) => {
      const next = lastOffset + last.items.length;
      return last.items.length === 0 || next >= last.total ? undefined : next;
    },
    enabled: !!saeId,
  });
}

/** The SAE's latest explanation job; `job` events (kind explain) keep it current (socketSync.ts). */
export function useExplainJob(saeId: string) {
  return useQuery({ queryKey: queryKeys.sae.explainJob(saeId), queryFn: () => api.explainJob(saeId), staleTime: 0 });
}

export function useFeature(saeId: string, index: number) {
  return useQuery({ queryKey: queryKeys.sae.feature(saeId, index), queryFn: () => api.getFeature(saeId, index) });
}

export function usePatches() {
  return useQuery({ queryKey: queryKeys.patches(), queryFn: () => api.listPatches() });
}

/**
 * The activations of `features` of an SAE on `text` (POST .../activations, read as a query: cached per text,
 * idle while the text is blank). The Patch console shows them per patch so an inactive feature says so.
 */
export function useTextActivations(saeId: string | null, text: string, features: number[]) {
  return useQuery({
    queryKey: queryKeys.sae.textActivations(saeId ?? "", text, features),
    queryFn: () => api.activations(saeId!, { text, features, top_k: 1 }),
    enabled: !!saeId && text.trim().length > 0 && features.length > 0,
    staleTime: 60_000,
    placeholderData: (prev) => prev,
  });
}

/** Which SAEs a provenance graph of `saeId`'s features traces through, and which layers lack one (idle without an id). */
export function useUpstream(saeId: string | null | undefined, depth: number) {
  return useQuery({
    queryKey: queryKeys.upstream(saeId ?? "", depth),
    queryFn: () => api.provenanceUpstream(saeId!, depth),
    enabled: !!saeId && depth >= 1,
  });
}

export function useTranscoderSets() {
  return useQuery({ queryKey: queryKeys.transcoderSets(), queryFn: () => api.listTranscoderSets() });
}

/** Traced circuits, newest first; a running job changes without a REST call, so never fresh. */
export function useCircuits() {
  return useQuery({ queryKey: queryKeys.circuits.list(), queryFn: () => api.listCircuits(), staleTime: 0 });
}

/**
 * One circuit pruned at `nodeThreshold` (null: its stored threshold). While another threshold loads, the
 * previous graph stays on screen (the prune slider refetches).
 */
export function useCircuit(id: string | null, nodeThreshold: number | null) {
  return useQuery({
    queryKey: queryKeys.circuits.detail(id ?? "", nodeThreshold),
    queryFn: () => api.getCircuit(id!, nodeThreshold ?? undefined),
    enabled: id != null,
    placeholderData: keepPreviousData,
    staleTime: 0,
  });
}

/** A feature's detail for a tooltip or panel: idle until both ids are given (shares the feature page's cache). */
export function useFeatureIfAny(saeId: string | null | undefined, index: number | null | undefined) {
  return useQuery({
    queryKey: queryKeys.sae.feature(saeId ?? "", index ?? -1),
    queryFn: () => api.getFeature(saeId!, index!),
    enabled: !!saeId && index != null,
  });
}

/** The SAE's cached feature map (404 before it is computed, 409 while it is: not retried, the job says why). */
export function useFeatureMap(saeId: string | null | undefined) {
  return useQuery({
    queryKey: queryKeys.sae.map(saeId ?? ""),
    queryFn: () => api.getMap(saeId as string),
    enabled: !!saeId,
    retry: false,
  });
}

export function useMapJob(saeId: string | null | undefined) {
  return useQuery({ queryKey: queryKeys.sae.mapJob(saeId ?? ""), queryFn: () => api.mapJob(saeId as string),
    enabled: !!saeId, staleTime: 0 });
}

/** The SAE's latest evaluation (404 before the first, 409 while one runs: not retried). */
export function useEvals(saeId: string | null | undefined) {
  return useQuery({
    queryKey: queryKeys.sae.evals(saeId ?? ""),
    queryFn: () => api.getEvals(saeId as string),
    enabled: !!saeId,
    retry: false,
  });
}

export function useEvalsJob(saeId: string | null | undefined) {
  return useQuery({ queryKey: queryKeys.sae.evalsJob(saeId ?? ""), queryFn: () => api.evalsJob(saeId as string),
    enabled: !!saeId, staleTime: 0 });
}
/** Behaviour-removal jobs, newest first; a running job changes without a REST call, so never fresh. */
export function useBehaviourJobs() {
  return useQuery({ queryKey: queryKeys.behaviours.list(), queryFn: () => api.listBehaviourJobs(), staleTime: 0 });
}

/** One behaviour-removal job (request, phase, best so far, report once done); idle while `id` is null. */
export function useBehaviourJob(id: string | null) {
  return useQuery({
    queryKey: queryKeys.behaviours.detail(id ?? ""),
    queryFn: () => api.getBehaviourJob(id!),
    enabled: id != null,
    staleTime: 0,
  });
}

/**
 * The candidates a job evaluated, in evaluation order; idle while `id` is null. While the job runs,
 * socketSync appends each `behaviour_candidate` event to this cache entry (see BehaviourCandidateRow).
 */
export function useBehaviourCandidates(id: string | null) {
  return useQuery<BehaviourCandidateRow[]>({
    queryKey: queryKeys.behaviours.candidates(id ?? ""),
    queryFn: () => api.listBehaviourCandidates(id!),
    enabled: id != null,
    staleTime: 0,
  });
}
