import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { TrainPage } from "./TrainPage";
import { sweepGrid } from "./trainData";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { MemberResult, TrainingRunDetail } from "../../api/types";
import type { MemberProgress, TrainingProgressMsg } from "../../ws/messages";

afterEach(() => vi.unstubAllGlobals());

const HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"];

/** 2 hooks x 2 widths: members 0,1 at hook 0, 2,3 at hook 1 (the server's order) */
const memberSpec = (index: number) => ({
  index, hook_name: HOOKS[Math.floor(index / 2)], architecture: "topk", d_sae: index % 2 ? 128 : 64, k: 4, l1_coefficient: 5,
});

const running: TrainingRunDetail = {
  id: "sw", status: "running", created_at: 1767225600, updated_at: 1767225601, model_id: "tiny", hook_names: HOOKS,
  architecture: "topk", step: 0, tokens_seen: 0, total_tokens: 4096, sae_ids: [], n_members: 4, config: { d_sae: 64, k: 4 },
  history: [],
};

function progressMsg(over: Partial<TrainingProgressMsg>, members: MemberProgress[]): TrainingProgressMsg {
  return {
    type: "training_progress", run_id: "sw", step: 0, tokens: 0, tokens_read: 0, total_tokens: 4096, total_steps: 8,
    tokens_per_s: 0, eta_s: null, mse: null, fvu: null, l0: null, dead_fraction: null, aggregate: "mean_over_members",
    members, passes: 1, peak_memory_bytes: 0, world_size: 1, phase: "training", phase_done: 0, phase_total: 0,
    phase_unit: "steps", ts: 0, ...over,
  };
}

describe("Train page sweeps", () => {
  it("counts the grid's SAEs before starting and sends the sweep lists and epochs", async () => {
    const { calls } = stubFetch({
      "GET /api/model": () => [200, { status: "ready", n_layers: 4 }],
      "GET /api/corpora": () => [200, [{ id: "default", name: "built-in", n_tokens: 1000 }]],
      "GET /api/training": () => [200, []],
      "POST /api/training": () => [202, { run_id: "new", status: "queued" }],
    });
    renderPage(<TrainPage />, { path: "/train", route: "/train" });
    fireEvent.change(await screen.findByLabelText(/^Layers/), { target: { value: "0,1" } });
    expect(screen.getByTestId("member-count")).toHaveTextContent("2 SAEs (2 layers)");
    fireEvent.click(screen.getByLabelText(/Sweep: train a grid/));
    const archs = screen.getByRole("group", { name: "Sweep architectures" });
    fireEvent.click(within(archs).getByLabelText("standard"));
    fireEvent.change(screen.getByLabelText("Widths (d_sae)"), { target: { value: "64, 128" } });
    fireEvent.change(screen.getByLabelText("k values (topk, batchtopk)"), { target: { value: "4, 8, 16" } });
    fireEvent.change(screen.getByLabelText("L1 coefficients (standard)"), { target: { value: "1, 5" } });
    // per layer: topk 2 widths x 3 k + standard 2 widths x 2 L1 = 10; two layers = 20
    expect(screen.getByTestId("member-count")).toHaveTextContent("20 SAEs (2 layers x 10 grid points)");
    fireEvent.change(screen.getByLabelText(/^Epochs/), { target: { value: "2" } });
    fireEvent.click(screen.getByRole("button", { name: "Start training" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST")).toBe(true));
    const body = calls.find((c) => c.method === "POST")!.body as Record<string, unknown>;
    expect(body.layers).toEqual([0, 1]);
    expect(body.epochs).toBe(2);
    expect(body.sweep).toEqual({ architectures: ["topk", "standard"], d_sae: [64, 128], k: [4, 8, 16], l1_coefficient: [1, 5] });
  });

  it("refuses a grid the server would refuse (k above a width, too many SAEs)", () => {
    expect(sweepGrid([0], ["topk"], [8], [4, 16], [5]).error).toMatch(/k <= d_sae/);
    expect(sweepGrid([0, 1, 2, 3, 4], ["topk"], [64, 128, 256, 512], [1, 2, 4, 8], [5]).error).toMatch(/80 SAEs/);
    expect(sweepGrid([3], ["batchtopk", "standard"], [64], [4], [1, 2, 3]).members.map((m) => m.k ?? m.l1_coefficient))
      .toEqual([4, 1, 2, 3]);
  });

  it("shows the buffer-filling phase with its progress instead of a 0 tokens/s, then each hook's members apart", async () => {
    stubFetch({
      "GET /api/model": () => [200, { status: "ready", n_layers: 2 }],
      "GET /api/corpora": () => [200, []],
      "GET /api/training": () => [200, [running]],
      "GET /api/training/sw": () => [200, running],
    });
    const { ws, container } = renderPage(<TrainPage />, { path: "/train", route: "/train" });
    act(() => ws().serverOpen());
    await screen.findByTestId("run-view");
    act(() => ws().serverSend(progressMsg({ phase: "filling buffer", phase_done: 12, phase_total: 48, phase_unit: "contexts" }, [])));
    expect(screen.getByTestId("phase")).toHaveTextContent("filling buffer");
    expect(screen.getByTestId("phase-count")).toHaveTextContent("12 / 48 contexts");
    expect(screen.getByRole("progressbar", { name: "Phase progress" })).toHaveAttribute("aria-valuenow", "25");
    expect(screen.getByTestId("tokens-per-s")).toHaveTextContent("— tokens/s");
    expect(screen.getByTestId("run-stats")).toHaveTextContent("4 SAEs");

    const fvus = [0.5, 0.25, 0.8, 0.6];
    const at = (step: number) => [0, 1, 2, 3].map((i) => ({ ...memberSpec(i), fvu: fvus[i] / step, l0: 4, mse: 1 / step, dead_fraction: 0 }));
    act(() => ws().serverSend(progressMsg({ step: 1, tokens: 512, tokens_per_s: 250, phase_done: 1, phase_total: 8 }, at(1))));
    act(() => ws().serverSend(progressMsg({ step: 2, tokens: 1024, tokens_per_s: 260, phase_done: 2, phase_total: 8 }, at(2))));
    expect(screen.getByTestId("tokens-per-s")).toHaveTextContent("260 tokens/s");
    expect(screen.getByTestId("phase-count")).toHaveTextContent("2 / 8 steps");
    const hooks = await screen.findAllByTestId("hook-charts");
    expect(hooks.map((h) => h.getAttribute("data-hook"))).toEqual(HOOKS);
    // each hook's FVU chart has its own two members, with their own last values
    const fvuOf = (h: HTMLElement) => within(h).getByText("FVU", { selector: "figcaption" }).closest("figure")!;
    expect(fvuOf(hooks[0]).querySelectorAll("path[data-series]")).toHaveLength(2);
    expect(within(fvuOf(hooks[0])).getByTestId("last-#0 topk 64 k4")).toHaveTextContent("0.25");
    expect(within(fvuOf(hooks[0])).getByTestId("last-#1 topk 128 k4")).toHaveTextContent("0.125");
    expect(within(fvuOf(hooks[1])).getByTestId("last-#2 topk 64 k4")).toHaveTextContent("0.4");
    expect(within(fvuOf(hooks[1])).getByTestId("last-#3 topk 128 k4")).toHaveTextContent("0.3");
    // the aggregate lines are not shown for a run with per-member numbers
    expect(container.querySelector('path[data-series="mse"]')).toBeNull();
  });

  it("after the run: a row per member with its final metrics and an L0/FVU point per member at each hook", async () => {
    const members: MemberResult[] = [0, 1, 2, 3].map((i) => ({
      ...memberSpec(i), k: 4 * (i % 2 + 1), l0: 4 * (i % 2 + 1), held_out_fvu: [0.3, 0.2, 0.5, 0.35][i],
      explained_variance: 1 - [0.3, 0.2, 0.5, 0.35][i], dead_fraction: 0.01 * i, held_out_dead_fraction: 0.02 * i,
      ce_loss_recovered: [0.9, 0.95, 0.7, 0.8][i], sae_id: `s${i}`, lr: 2e-4,
    }));
    const done: TrainingRunDetail = { ...running, status: "done", sae_ids: ["s0", "s1", "s2", "s3"], members, metrics: { passes: 1 } };
    stubFetch({
      "GET /api/model": () => [200, { status: "ready", n_layers: 2 }],
      "GET /api/corpora": () => [200, []],
      "GET /api/training": () => [200, [done]],
      "GET /api/training/sw": () => [200, done],
    });
    const { container } = renderPage(<TrainPage />, { path: "/train", route: "/train" });
    const rows = await screen.findAllByTestId("member-row");
    expect(rows).toHaveLength(4);
    const cell = (r: HTMLElement, col: string) => r.querySelector(`[data-col="${col}"]`)!.textContent;
    expect(rows.map((r) => cell(r, "fvu"))).toEqual(["0.3", "0.2", "0.5", "0.35"]);
    expect(rows.map((r) => cell(r, "l0"))).toEqual(["4", "8", "4", "8"]);
    expect(rows.map((r) => cell(r, "dead"))).toEqual(["0", "0.02", "0.04", "0.06"]);
    expect(rows.map((r) => cell(r, "ce"))).toEqual(["0.9", "0.95", "0.7", "0.8"]);
    expect(rows[3]).toHaveTextContent("blocks.1.hook_resid_post");
    expect(within(rows[1]).getByRole("link")).toHaveAttribute("href", "/features/s1");
    const charts = screen.getAllByTestId("pareto");
    expect(charts.map((c) => c.getAttribute("data-hook"))).toEqual(HOOKS);
    const pts = (c: HTMLElement) => [...c.querySelectorAll("circle")].map((el) => ({
      id: el.getAttribute("data-member"), cx: Number(el.getAttribute("cx")), cy: Number(el.getAttribute("cy")),
    }));
    const [a, b] = [pts(charts[0]), pts(charts[1])];
    expect(a.map((p) => p.id)).toEqual(["0", "1"]);
    expect(b.map((p) => p.id)).toEqual(["2", "3"]);
    // plot area 292 x 178 px (360 x 220 less margins); x: L0 over [0, 8], y: FVU over [0, max FVU of the hook]
    expect(a[0].cx).toBeCloseTo(146);
    expect(a[1].cx).toBeCloseTo(292);
    expect(a[0].cy).toBeCloseTo(0); // FVU 0.3 is the top of [0, 0.3]
    expect(a[1].cy).toBeCloseTo(178 * (1 - 0.2 / 0.3));
    expect(b[0].cy).toBeCloseTo(0); // FVU 0.5 is the top of [0, 0.5]
    expect(b[1].cy).toBeCloseTo(178 * (1 - 0.35 / 0.5));
    expect(screen.getByTestId("final-metrics")).toHaveTextContent("4 SAEs");
    expect(screen.getAllByTestId("sae-link").map((l) => l.textContent)).toEqual([
      "Open SAE features (blocks.0.hook_resid_post · topk 64 k4) →", "Open SAE features (blocks.0.hook_resid_post · topk 128 k8) →",
      "Open SAE features (blocks.1.hook_resid_post · topk 64 k4) →", "Open SAE features (blocks.1.hook_resid_post · topk 128 k8) →",
    ]);
    expect(container.querySelectorAll("circle")).toHaveLength(4);
  });
});
