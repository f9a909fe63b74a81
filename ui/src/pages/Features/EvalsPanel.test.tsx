import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { EvalsPanel, metricHelp } from "./EvalsPanel";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";

const SUMMARY = { absorption_fraction: 0.125, full_absorption: 0.05, main_latents_per_letter: 1.5, raw_probe_accuracy: 0.9,
  k1_probe_accuracy: 0.7, k2_probe_accuracy: 0.75, dead_fraction: 0.25, dense_fraction: 0 };
const RESULT = {
  sae_id: "s1", created_at: 1, request: {}, summary: SUMMARY,
  result: { hook_name: "h", d_sae: 64, summary: SUMMARY, absorption: {}, sparse_probing: {},
    density: { n_tokens: 300, log10_density_edges: [-10, -3, -2, -1, 0], counts: [16, 8, 30, 10], dead_fraction: 0.25, dense_fraction: 0, median_log10_density: -1.5 } },
};
const SAE = (id: string, d_sae: number) => ({ id, name: id, model_id: "m", hook_name: "blocks.0.hook_resid_post", layer: 0, d_in: 16, d_sae, architecture: "topk", created_at: 1, source: "trained" });
const job = (status: string) => ({ id: "j1", sae_id: "s1", kind: "evals", status, done: status === "done" ? 3 : 1, total: 3, error: null as string | null, config: {}, created_at: 1, updated_at: 1 });

function setup(evaluated: boolean, initial?: ReturnType<typeof job>) {
  const state = { evaluated, job: initial ?? (evaluated ? job("done") : null as ReturnType<typeof job> | null) };
  const stub = stubFetch({
    "GET /api/saes": () => [200, [SAE("s1", 64), SAE("s2", 128)]],
    "GET /api/saes/s1/evals": () => (state.evaluated ? [200, RESULT] : [404, { detail: "SAE s1 has not been evaluated yet; POST /api/saes/s1/evals" }]),
    "GET /api/saes/s1/evals/job": () => [200, state.job],
    "POST /api/saes/s1/evals": () => {
      state.job = job("running");
      return [202, state.job];
    },
    "POST /api/saes/s1/evals/cancel": () => [202, state.job],
    "GET /api/evals/compare": (u) => [200, { rows: u.searchParams.get("sae_ids")!.split(",").map((id, i) => ({ sae_id: id, d_sae: 64 * (i + 1), dead_fraction: 0.25 * (i + 1) })) }],
  });
  const r = renderPage(<EvalsPanel saeId="s1" />);
  return { ...stub, ...r, state };
}

afterEach(() => vi.unstubAllGlobals());

describe("EvalsPanel", () => {
  it("shows every headline number with what it means and the density histogram", async () => {
    setup(true);
    const rows = await screen.findAllByTestId("evals-row");
    expect(rows).toHaveLength(8);
    const dead = rows.find((r) => r.textContent?.startsWith("dead_fraction"))!;
    expect(within(dead).getAllByRole("cell")[1]).toHaveTextContent("0.250");
    expect(dead).toHaveTextContent(metricHelp("dead_fraction"));
    expect(rows.find((r) => r.textContent?.startsWith("k2_probe_accuracy"))).toHaveTextContent("2 best SAE latents");
    expect(screen.getByTestId("density-bars").querySelectorAll("rect")).toHaveLength(4);
    expect(screen.getByTestId("evals-status")).toHaveTextContent("done");
  });

  it("compares with another SAE side by side", async () => {
    const { calls } = setup(true);
    await screen.findAllByTestId("evals-row");
    const select = screen.getByLabelText("SAEs to compare") as HTMLSelectElement;
    await waitFor(() => expect(select.options).toHaveLength(1));
    select.options[0].selected = true;
    fireEvent.change(select);
    const table = await screen.findByTestId("evals-compare");
    expect(within(table).getAllByRole("columnheader").map((h) => h.textContent)).toEqual(["Metric", "s1", "s2"]);
    expect(within(table).getByText("dead_fraction").closest("tr")).toHaveTextContent("dead_fraction0.2500.500");
    expect(calls.find((c) => c.url.pathname === "/api/evals/compare")?.url.searchParams.get("sae_ids")).toBe("s1,s2");
  });

  it("before a result: runs the chosen evaluations and shows the result when the job ends", async () => {
    const { calls, ws, state } = setup(false);
    act(() => ws().serverOpen());
    expect(await screen.findByText(/Not evaluated yet/)).toBeInTheDocument();
    fireEvent.click(screen.getByLabelText("Absorption"));
    fireEvent.click(screen.getByRole("button", { name: "Run evaluations" }));
    await waitFor(() => expect(screen.getByTestId("evals-panel")).toHaveAttribute("data-status", "running"));
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ which: ["density", "sparse_probing"] });
    state.evaluated = true;
    state.job = job("done");
    act(() => ws().serverSend({ type: "job", job_id: "j1", kind: "evals", status: "done", done: 3, total: 3, detail: null }));
    expect(await screen.findAllByTestId("evals-row")).toHaveLength(8);
    expect(screen.getByTestId("evals-panel")).toHaveAttribute("data-status", "done");
  });

  it("cancels a running evaluation; the previous result shows again", async () => {
    const { calls, ws, state } = setup(false, job("running")); // GET evals answers 409/404 while it runs
    act(() => ws().serverOpen());
    const cancel = await screen.findByRole("button", { name: "Cancel" });
    expect(screen.queryByRole("button", { name: /evaluations/ })).toBeNull();
    fireEvent.click(cancel);
    await waitFor(() => expect(calls.filter((c) => c.method === "POST" && c.url.pathname === "/api/saes/s1/evals/cancel")).toHaveLength(1));
    state.job = { ...job("cancelled"), error: "cancelled before it finished; nothing was written" };
    state.evaluated = true;
    act(() => ws().serverSend({ type: "job", job_id: "j1", kind: "evals", status: "cancelled", done: 1, total: 3, detail: null }));
    await waitFor(() => expect(screen.getByTestId("evals-panel")).toHaveAttribute("data-status", "cancelled"));
    expect(await screen.findByTestId("evals-cancelled")).toHaveTextContent("the previous evaluation");
    expect(await screen.findAllByTestId("evals-row")).toHaveLength(8);
    expect(screen.queryByRole("button", { name: "Cancel" })).toBeNull();
    expect(screen.getByRole("button", { name: "Re-run evaluations" })).toBeInTheDocument();
  });
});
