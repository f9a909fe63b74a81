import { act, screen, waitFor } from "@testing-library/react";
import { TrainPage } from "./TrainPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { TrainingRunDetail } from "../../api/types";

const run: TrainingRunDetail = {
  run_id: "r1", status: "running", created_at: "2026-01-01T00:00:00Z",
  config: { layer: 1, hook: "resid_post", architecture: "topk", d_sae: 64, k: 4, n_tokens: 1000 },
  progress: { step: 1, total_steps: 10, tokens_seen: 100, total_tokens: 1000, tokens_per_s: 50, eta_s: 18 },
  history: [{ step: 1, loss: 1, fvu: 0.9, l0: 4, dead_fraction: 0.5 }],
};

afterEach(() => vi.unstubAllGlobals());

describe("TrainPage", () => {
  it("shows the running run and appends live progress to its charts", async () => {
    stubFetch({
      "GET /api/model": () => [200, { n_layers: 2 }],
      "GET /api/corpora": () => [200, []],
      "GET /api/training": () => [200, [run]],
      "GET /api/training/r1": () => [200, run],
    });
    const { ws, container } = renderPage(<TrainPage />, { path: "/train", route: "/train" });
    act(() => ws().serverOpen());
    await screen.findByTestId("run-view");
    expect(screen.getByRole("progressbar", { name: "Training progress" })).toHaveAttribute("aria-valuenow", "10");
    act(() =>
      ws().serverSend({
        type: "training_progress", run_id: "r1", step: 5, total_steps: 10, tokens_seen: 500, total_tokens: 1000,
        tokens_per_s: 60, eta_s: 8, loss: 0.5, fvu: 0.4, l0: 4, dead_fraction: 0.1,
      }),
    );
    expect(screen.getByRole("progressbar", { name: "Training progress" })).toHaveAttribute("aria-valuenow", "50");
    expect(screen.getByTestId("last-fvu")).toHaveTextContent("0.4");
    await waitFor(() => expect(container.querySelector('path[data-series="loss"]')).toBeTruthy());
    expect(screen.getByRole("button", { name: "Cancel run" })).toBeInTheDocument();
    expect(screen.getByTestId("run-stats")).toHaveTextContent("ETA 8s");
  });
});
