import { act, screen, waitFor } from "@testing-library/react";
import { useAnalysisStatus, useFeaturePages, useModel, usePatches, useRun, useRuns, useSaes } from "./queries";
import { queryKeys } from "./queryKeys";
import { createTestQueryClient, renderPage } from "../test/render";
import { stubFetch } from "../test/fetchStub";
import { FakeWebSocket } from "../test/fakeWebSocket";
import type { AnalysisStatus, BehaviourCandidateRow, TrainingRun } from "./types";
import { applyServerMessage } from "./socketSync";

const run = (id: string, status: TrainingRun["status"]): TrainingRun => ({
  id, status, created_at: 1, updated_at: 1, model_id: "tiny", hook_names: ["blocks.0.hook_resid_post"],
  architecture: "topk", step: 0, tokens_seen: 0, total_tokens: 100, sae_ids: [],
});

/** Reads what the pages read, so every key has a mounted query (only those refetch on invalidation). */
function Everything() {
  const runs = useRuns();
  useRun("r1");
  useSaes();
  useModel();
  usePatches();
  useAnalysisStatus("s1");
  useAnalysisStatus("s2");
  useFeaturePages("s1", "index", "");
  useFeaturePages("s2", "index", "");
  return <p data-testid="runs">{(runs.data ?? []).map((r) => `${r.id}:${r.status}`).join(" ")}</p>;
}

const PATHS = [
  "/api/training", "/api/training/r1", "/api/saes", "/api/model", "/api/patches",
  "/api/saes/s1/analysis", "/api/saes/s2/analysis", "/api/saes/s1/features", "/api/saes/s2/features",
] as const;
type P = (typeof PATHS)[number];

function setup() {
  let r1: TrainingRun = run("r1", "running");
  const stub = stubFetch({
    "GET /api/training": () => [200, [r1]],
    "GET /api/training/r1": () => [200, { ...r1, history: [] }],
    "GET /api/saes": () => [200, []],
    "GET /api/model": () => [200, { status: "ready" }],
    "GET /api/patches": () => [200, []],
    "GET /api/saes/s1/analysis": () => [200, { sae_id: "s1", status: "none" }],
    "GET /api/saes/s2/analysis": () => [200, { sae_id: "s2", status: "none" }],
    "GET /api/saes/s1/features": () => [200, { items: [], total: 0, offset: 0, limit: 500 }],
    "GET /api/saes/s2/features": () => [200, { items: [], total: 0, offset: 0, limit: 500 }],
  });
  const page = renderPage(<Everything />);
  act(() => page.ws().serverOpen());
  const count = (p: P) => stub.calls.filter((c) => c.method === "GET" && c.url.pathname === p).length;
  const counts = () => Object.fromEntries(PATHS.map((p) => [p, count(p)])) as Record<P, number>;
  /** wait until the named paths were asked once more than in `before`, then check no other path was */
  const expectRefetched = async (before: Record<P, number>, paths: P[]) => {
    await waitFor(() => paths.forEach((p) => expect(count(p), p).toBe(before[p] + 1)));
    // let any stray refetch land before checking that the others stayed put
    await new Promise((r) => setTimeout(r, 50));
    const now = counts();
    for (const p of PATHS) expect(now[p], p).toBe(before[p] + (paths.includes(p) ? 1 : 0));
  };
  const loaded = () => waitFor(() => PATHS.forEach((p) => expect(count(p), p).toBeGreaterThan(0)));
  return { ...page, ...stub, counts, expectRefetched, loaded, finish: () => (r1 = { ...r1, status: "done" }) };
}

afterEach(() => vi.unstubAllGlobals());

describe("socket events invalidate queries", () => {
  it("training_done refetches the run list, the run detail and the SAE list; the page shows the new status", async () => {
    const t = setup();
    await t.loaded();
    expect(screen.getByTestId("runs")).toHaveTextContent("r1:running");
    const before = t.counts();
    t.finish();
    act(() => t.ws().serverSend({ type: "training_done", run_id: "r1", sae_ids: ["s9"] }));
    await t.expectRefetched(before, ["/api/training", "/api/training/r1", "/api/saes"]);
    expect(screen.getByTestId("runs")).toHaveTextContent("r1:done");
  });

  it.each(["training_failed", "training_cancelled"] as const)("%s refetches the runs and the SAE list", async (type) => {
    const t = setup();
    await t.loaded();
    const before = t.counts();
    act(() => t.ws().serverSend({ type, run_id: "r1", error: "boom" }));
    await t.expectRefetched(before, ["/api/training", "/api/training/r1", "/api/saes"]);
  });

  it("training_progress reloads the run list only for a run it does not know", async () => {
    const t = setup();
    await t.loaded();
    const progress = (run_id: string) => ({
      type: "training_progress", run_id, step: 1, tokens: 10, total_tokens: 100, mse: 1, fvu: 1, l0: 1,
      dead_fraction: 0, tokens_per_s: 1, eta_s: 1,
    });
    const before = t.counts();
    act(() => t.ws().serverSend(progress("r1")));
    await new Promise((r) => setTimeout(r, 50));
    expect(t.counts()).toEqual(before);
    act(() => t.ws().serverSend(progress("r2")));
    await t.expectRefetched(before, ["/api/training"]);
  });

  it("analysis_done refetches that SAE's status and, when done, its feature pages; analysis_progress marks it running", async () => {
    const t = setup();
    await t.loaded();
    act(() => t.ws().serverSend({ type: "analysis_progress", sae_id: "s1", phase: "activations", done: 1, total: 4 }));
    expect(t.client.getQueryData<AnalysisStatus>(queryKeys.sae.analysis("s1"))?.status).toBe("running");
    expect(t.client.getQueryData<AnalysisStatus>(queryKeys.sae.analysis("s2"))?.status).toBe("none");

    let before = t.counts();
    act(() => t.ws().serverSend({ type: "analysis_done", sae_id: "s1", status: "failed", error: "x" }));
    await t.expectRefetched(before, ["/api/saes/s1/analysis"]);

    before = t.counts();
    act(() => t.ws().serverSend({ type: "analysis_done", sae_id: "s1", status: "done" }));
    await t.expectRefetched(before, ["/api/saes/s1/analysis", "/api/saes/s1/features"]);
  });

  it("model_loaded refetches the model, the SAE list and the patches", async () => {
    const t = setup();
    await t.loaded();
    const before = t.counts();
    act(() => t.ws().serverSend({ type: "model_loaded", model: {} }));
    await t.expectRefetched(before, ["/api/model", "/api/saes", "/api/patches"]);
  });

  it("hello refetches the model only when its status differs from the cached one", async () => {
    const t = setup();
    await t.loaded();
    const before = t.counts();
    act(() => t.ws().serverSend({ type: "hello", model_status: "ready" }));
    await new Promise((r) => setTimeout(r, 50));
    expect(t.counts()).toEqual(before);
    act(() => t.ws().serverSend({ type: "hello", model_status: "loading" }));
    await t.expectRefetched(before, ["/api/model"]);
  });

  it("a reconnect refetches everything", async () => {
    const t = setup();
    await t.loaded();
    const before = t.counts();
    act(() => t.socket.reconnectNow());
    expect(FakeWebSocket.instances).toHaveLength(2);
    act(() => t.ws().serverOpen());
    await t.expectRefetched(before, [...PATHS]);
  });
});

describe("behaviour-removal events", () => {
  const split = { n_positive: 1, n_negative: 1, target_before: 0.5, target_after: 0.1, target_ratio: 0.2, kl_mean: 0, kl_max: 0, max_target_change: 0 };
  const candidate = (index: number) => ({
    type: "behaviour_candidate" as const, ts: 1, job_id: "bh_1", index, stage: "screen", search: split, held_out: split,
    edits: [{ sae_id: "s", hook_name: "h", layer: 0, mode: "ablate" as const, strength: 1, features: [3] }],
    feasible: true, objective: 0.2, budget_use: 0.1, best_index: index,
  });

  it("behaviour_candidate appends a row (once) to that job's cached candidates and leaves uncached jobs alone", () => {
    const qc = createTestQueryClient();
    qc.setQueryData(queryKeys.behaviours.candidates("bh_1"), []);
    applyServerMessage(qc, candidate(0));
    applyServerMessage(qc, candidate(1));
    applyServerMessage(qc, candidate(1));
    applyServerMessage(qc, { ...candidate(5), job_id: "bh_2" });
    const rows = qc.getQueryData<BehaviourCandidateRow[]>(queryKeys.behaviours.candidates("bh_1"))!;
    expect(rows.map((r) => r.index)).toEqual([0, 1]);
    expect(rows[0]).not.toHaveProperty("type");
    expect(rows[0]).not.toHaveProperty("best_index");
    expect(rows[0].edits[0].features).toEqual([3]);
    expect(qc.getQueryData(queryKeys.behaviours.candidates("bh_2"))).toBeUndefined();
  });

  it("job events of a behaviour removal mark its list and detail stale; its end also the candidates, done also the patches", () => {
    const qc = createTestQueryClient();
    const keys = [queryKeys.behaviours.list(), queryKeys.behaviours.detail("bh_1"), queryKeys.behaviours.candidates("bh_1"), queryKeys.patches()];
    const stale = () => keys.map((k) => qc.getQueryState(k)?.isInvalidated ?? null);
    const reset = () => keys.forEach((k) => qc.setQueryData(k, []));
    const job = (status: string) => ({ type: "job" as const, ts: 1, job_id: "bh_1", kind: "behaviour_removal", status, done: 1, total: 2 });
    reset();
    applyServerMessage(qc, job("running"));
    expect(stale()).toEqual([true, true, false, false]);
    reset();
    applyServerMessage(qc, job("cancelled"));
    expect(stale()).toEqual([true, true, true, false]);
    reset();
    applyServerMessage(qc, job("done"));
    expect(stale()).toEqual([true, true, true, true]);
    reset();
    applyServerMessage(qc, { ...job("done"), kind: "circuit" });
    expect(stale()).toEqual([false, false, false, false]);
  });
});
