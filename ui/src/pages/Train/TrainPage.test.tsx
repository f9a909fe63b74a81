import { act, screen, waitFor } from "@testing-library/react";
import { TrainPage } from "./TrainPage";
import { parseLayers } from "./trainData";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { TrainingRunDetail } from "../../api/types";

const run: TrainingRunDetail = {
  id: "r1", status: "running", created_at: 1767225600, updated_at: 1767225601, model_id: "tiny",
  hook_names: ["blocks.1.hook_resid_post"], architecture: "topk", step: 1, tokens_seen: 100, total_tokens: 1000,
  sae_ids: [], config: { d_sae: 64, k: 4 },
  history: [{ step: 1, tokens: 100, data: { mse: 1, fvu: 0.9, l0: 4, dead_fraction: 0.5 } }],
};

afterEach(() => vi.unstubAllGlobals());

describe("TrainPage", () => {
  it("shows the running run and appends live progress to its charts", async () => {
    stubFetch({
      "GET /api/model": () => [200, { status: "ready", n_layers: 2 }],
      "GET /api/corpora": () => [200, [{ id: "default", name: "built-in", n_tokens: 1000 }]],
      "GET /api/training": () => [200, [run]],
      "GET /api/training/r1": () => [200, run],
    });
    const { ws, container } = renderPage(<TrainPage />, { path: "/train", route: "/train" });
    act(() => ws().serverOpen());
    await screen.findByTestId("run-view");
    expect(screen.getByRole("progressbar", { name: "Training progress" })).toHaveAttribute("aria-valuenow", "10");
    act(() =>
      ws().serverSend({
        type: "training_progress", run_id: "r1", step: 5, tokens: 500, total_tokens: 1000,
        tokens_per_s: 60, eta_s: 8, mse: 0.5, fvu: 0.4, l0: 4, dead_fraction: 0.1, phase: "training",
      }),
    );
    expect(screen.getByRole("progressbar", { name: "Training progress" })).toHaveAttribute("aria-valuenow", "50");
    expect(screen.getByTestId("last-fvu")).toHaveTextContent("0.4");
    await waitFor(() => expect(container.querySelector('path[data-series="mse"]')).toBeTruthy());
    expect(screen.getByRole("button", { name: "Cancel run" })).toBeInTheDocument();
    expect(screen.getByTestId("run-stats")).toHaveTextContent("ETA 8s");
  });

  it("reloads the run list and the run when the socket says the run finished", async () => {
    let now: TrainingRunDetail = run;
    const { calls } = stubFetch({
      "GET /api/model": () => [200, { status: "ready", n_layers: 2 }],
      "GET /api/corpora": () => [200, []],
      "GET /api/training": () => [200, [now]],
      "GET /api/training/r1": () => [200, now],
    });
    const { ws } = renderPage(<TrainPage />, { path: "/train", route: "/train" });
    act(() => ws().serverOpen());
    expect(await screen.findByTestId("run-view")).toHaveAttribute("data-status", "running");
    expect(screen.queryByTestId("final-metrics")).toBeNull();
    const lists = calls.filter((c) => c.url.pathname === "/api/training").length;
    now = { ...run, status: "done", sae_ids: ["s9"], metrics: { held_out_fvu: 0.125, l0: 4, dead_fraction: 0 } };
    act(() => ws().serverSend({ type: "training_done", run_id: "r1", sae_ids: ["s9"] }));
    await waitFor(() => expect(screen.getByTestId("run-view")).toHaveAttribute("data-status", "done"));
    expect(screen.getByTestId("final-metrics")).toHaveTextContent("0.125");
    expect(screen.getByTestId("sae-link")).toHaveAttribute("href", "/features/s9");
    expect(calls.filter((c) => c.url.pathname === "/api/training").length).toBe(lists + 1);
    expect(screen.getAllByTestId("run-row")[0]).toHaveTextContent("done");
  });

  it("sends several layers as a list", () => {
    expect(parseLayers("3")).toEqual({ layer: 3 });
    expect(parseLayers("0, 1,2")).toEqual({ layers: [0, 1, 2] });
    expect(parseLayers("0-2")).toEqual({ layers: [0, 1, 2] });
    expect(parseLayers("a")).toBeNull();
  });
});
