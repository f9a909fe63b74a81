import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import { CircuitsPage } from "./CircuitsPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import { circuitEdges, circuitNodes } from "../../charts/CircuitGraph/fixtures";

afterEach(() => vi.unstubAllGlobals());

const model = { status: "ready", model_id: "m", n_layers: 2 };
const set = { id: "tcs_1", name: "hand", model_id: "m", scan: "m/tcs_1", layers: [0, 1], architecture: "topk", d_tc: 16, skip: true, source: "trained", created_at: 1, metrics: {} };
const summary = {
  n_tokens: 3, n_active_features: 9, n_features: 3, n_nodes: 15, n_pruned_nodes: 9, n_pruned_edges: 5,
  replacement_score: 0.61, completeness_score: 0.87, graph_seconds: 1.5, total_seconds: 2, timings: {},
  validation: { pearson: 0.93, sign_agreement: 1, freeze: "attention", checks: [] },
  logits: [{ token: " sat", token_id: 42, probability: 0.6 }, { token: " ran", token_id: 43, probability: 0.3 }],
  target: { token: " ran", token_id: 43, probability: 0.3 },
};
const feature = {
  index: 5, label: "cats", analysed: true, histogram: { edges: [0, 1], counts: [1] }, quantiles: [], neighbours: [],
  top_positive_logits: [], top_negative_logits: [],
  top_contexts: [{ tokens: ["a", " cat", " purrs"], activations: [0, 3, 1], context: 0, start: 0, position: 1, max: 3 }],
};
const row = (status: string) => ({ id: "circ_1", model_id: "m", set_id: "tcs_1", prompt: "the cat", status, settings: { target: " ran" }, summary: status === "done" ? summary : null, created_at: 1, updated_at: 1 });
const graph = (t: number) => ({
  n_layers: 2, prompt_tokens: ["<s>", " the", " cat"], input_ids: [1, 7, 9], n_nodes_total: 15, n_features_total: 3,
  node_threshold: t, edge_threshold: 0.98, nodes: t < 0.8 ? circuitNodes.filter((n) => n.node !== 1) : circuitNodes, edges: circuitEdges,
});
const tok = (id: number, p: number) => ({ token: `t${id}`, token_id: id, probability: p, logit: Math.log(p) });

describe("CircuitsPage", () => {
  it("traces with job progress, prunes, pins two nodes into a supernode and intervenes", async () => {
    let status = "none";
    const { calls } = stubFetch({
      "GET /api/model": () => [200, model],
      "GET /api/transcoders": () => [200, [set]],
      "GET /api/circuits": () => [200, status === "none" ? [] : [row(status)]],
      "POST /api/circuits": () => {
        status = "running";
        return [202, { id: "circ_1", status: "queued" }];
      },
      "GET /api/circuits/circ_1": (url) => [200, { ...row(status), graph: status === "done" ? graph(Number(url.searchParams.get("node_threshold") ?? 0.8)) : null }],
      "POST /api/circuits/circ_1/intervene": () => [200, {
        before: [tok(42, 0.6), tok(43, 0.3)], after: [tok(43, 0.5), tok(42, 0.2)], moved: [], kl: 0.42,
        logit_nodes: [
          { node: 13, token: " sat", token_id: 42, predicted: -1.2, measured: -1.0, before: 0.6, after: 0.2 },
          { node: 14, token: " ran", token_id: 43, predicted: 0.4, measured: 0.5, before: 0.3, after: 0.5 },
        ], interventions: [],
      }],
      "GET /api/saes/sae_l0/features/5": () => [200, feature],
    });
    const { ws } = renderPage(<CircuitsPage />, { path: "/circuits", route: "/circuits" });
    act(() => ws().serverOpen());
    fireEvent.change(await screen.findByLabelText("Prompt"), { target: { value: "the cat" } });
    fireEvent.change(screen.getByLabelText("Target token"), { target: { value: " ran" } });
    await screen.findByRole("option", { name: /hand/ });
    fireEvent.click(screen.getByRole("button", { name: "Trace" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.url.pathname === "/api/circuits")).toBe(true));
    expect(calls.find((c) => c.method === "POST")!.body).toMatchObject({ prompt: "the cat", set_id: "tcs_1", max_feature_nodes: 512, target: " ran" });
    act(() => ws().serverSend({ type: "job", ts: 1, job_id: "circ_1", kind: "circuit", status: "running", done: 5, total: 10, detail: "attribution" }));
    await waitFor(() => expect(screen.getByRole("progressbar", { name: "Tracing progress" })).toHaveAttribute("aria-valuenow", "50"));
    status = "done";
    act(() => ws().serverSend({ type: "job", ts: 2, job_id: "circ_1", kind: "circuit", status: "done", done: 10, total: 10 }));
    await waitFor(() => expect(screen.getAllByTestId("circuit-node")).toHaveLength(9));
    expect(screen.getByTestId("completeness-score")).toHaveTextContent("0.87");
    expect(screen.getByTestId("validation-r")).toHaveTextContent("0.93");
    expect(screen.getByTestId("circuit-target")).toHaveTextContent("·ran p = 0.3");
    expect(screen.getByRole("button", { name: /output “ ran”.*, target/ })).toHaveAttribute("data-target", "true");

    // a node: its top contexts, then ablate it alone and read the target's probability change
    fireEvent.click(screen.getByRole("button", { name: /cats/ }));
    expect(await screen.findByTestId("node-contexts")).toHaveTextContent("a cat purrs");
    expect(screen.getByRole("link", { name: "Open feature page" })).toHaveAttribute("href", "/features/sae_l0/5");
    fireEvent.click(screen.getByRole("button", { name: "Intervene" }));
    expect(await screen.findByTestId("intervention-target")).toHaveTextContent("P(·ran): 0.3 → 0.5 (+0.2)");
    expect(calls.find((c) => c.url.pathname.endsWith("/intervene"))!.body).toEqual({ nodes: [{ node: 0, value: 0 }] });

    fireEvent.change(screen.getByLabelText(/Prune/), { target: { value: "0.5" } });
    await waitFor(() => expect(screen.getAllByTestId("circuit-node")).toHaveLength(8), { timeout: 3000 });
    expect(calls.some((c) => c.url.searchParams.get("node_threshold") === "0.5")).toBe(true);

    for (const name of [/cats/, /feature 3 \(layer 1/]) {
      fireEvent.click(screen.getByRole("button", { name }));
      fireEvent.click(await screen.findByRole("button", { name: "Pin" }));
    }
    fireEvent.change(screen.getByLabelText("Supernode label"), { target: { value: "cat circuit" } });
    fireEvent.click(screen.getByRole("button", { name: "Group pinned" }));
    expect(screen.getByTestId("supernode")).toHaveTextContent("cat circuit");
    fireEvent.click(screen.getByRole("button", { name: "Ablate together" }));
    await waitFor(() => expect(screen.getByRole("heading", { name: /Intervention on supernode/ })).toBeInTheDocument());
    await waitFor(() => expect(calls.filter((c) => c.url.pathname.endsWith("/intervene"))).toHaveLength(2));
    const body = calls.filter((c) => c.url.pathname.endsWith("/intervene"))[1].body as { nodes: { node: number; value: number }[] };
    expect(body.nodes).toEqual([{ node: 0, value: 0 }, { node: 2, value: 0 }]);
    expect(screen.getByTestId("intervention-kl")).toHaveTextContent("0.42");
  });

  it("offers training and import when the model has no transcoder set", async () => {
    const { calls } = stubFetch({
      "GET /api/model": () => [200, model],
      "GET /api/transcoders": () => [200, []],
      "GET /api/circuits": () => [200, []],
      "POST /api/transcoders/train": () => [202, { run_id: "run_1", status: "queued" }],
    });
    renderPage(<CircuitsPage />, { path: "/circuits", route: "/circuits" });
    fireEvent.click(await screen.findByRole("button", { name: /Train transcoders/ }));
    await waitFor(() => expect(calls.some((c) => c.url.pathname === "/api/transcoders/train")).toBe(true));
    expect(calls.find((c) => c.url.pathname === "/api/transcoders/train")!.body).toMatchObject({ all: true, d_tc: 2304, k: 32 });
  });
});
