import { fireEvent, screen, waitFor } from "@testing-library/react";
import { ProvenancePage } from "./ProvenancePage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import { edges, nodes } from "../../charts/ProvenanceGraph/fixtures";

afterEach(() => vi.unstubAllGlobals());

const sae = { id: "s1", name: "s1", model_id: "m", hook_name: "blocks.2.hook_resid_post", layer: 2, d_in: 8, d_sae: 64, architecture: "topk", created_at: 1, source: "trained" };
const upstream = (available: { sae_id: string; name: string; layer: number; hook_name: string }[], missing: number[]) => ({
  sae_id: "s1", layer: 2, hook: "resid_post", available, missing_layers: missing, suggested_layers: missing,
  train: { layers: missing, hook: "resid_post", d_sae: 64, architecture: "topk", k: 8 },
});

describe("ProvenancePage", () => {
  it("queries the graph, renders it with labelled validation, prunes per edge class, and opens a node", async () => {
    const { calls } = stubFetch({
      "GET /api/saes": () => [200, [sae]],
      "GET /api/provenance/upstream": () => [200, upstream([{ sae_id: "s0", name: "s0", layer: 1, hook_name: "blocks.1.hook_resid_post" }], [0])],
      "GET /api/provenance": () => [200, {
        nodes: nodes.map((n) => ({ ...n, sae_id: "s1" })), edges,
        validation: { edges: [{ source: "L1/3", target: "L2/7", predicted: 0.9, actual: 0.7 }], correlation: 0.93 },
      }],
    });
    renderPage(<ProvenancePage />, { path: "/provenance", route: "/provenance?sae=s1&feature=7" });
    await screen.findByRole("option", { name: /blocks.2/ });
    expect(await screen.findByTestId("upstream-saes")).toHaveTextContent("traces through layer 1");
    fireEvent.change(screen.getByLabelText(/^Prompt/), { target: { value: "line one\nline two" } });
    fireEvent.click(screen.getByRole("button", { name: "Trace" }));
    await screen.findAllByTestId("prov-node");
    const q = calls.find((c) => c.url.pathname === "/api/provenance")!.url.searchParams;
    expect(Object.fromEntries(q)).toEqual({ sae_id: "s1", feature: "7", depth: "2", top_k: "5", prompt: "line one\nline two" });
    expect(screen.getByTestId("prov-correlation")).toHaveTextContent("0.93");
    expect(screen.getByTestId("validation-row")).toHaveTextContent("L1 #3 a");
    expect(screen.getByTestId("validation-row")).toHaveTextContent("L2 #7 target");
    expect(screen.getAllByTestId("prov-edge")).toHaveLength(4);
    // feature edges at 50%: into L2/7 only the 0.9 edge carries half its weight; the logit edge stays
    fireEvent.change(screen.getByLabelText("Feature edges: keep"), { target: { value: "0.5" } });
    expect(screen.getAllByTestId("prov-edge").map((e) => e.getAttribute("data-source")).sort()).toEqual(["L0/1", "L1/3", "L2/7"]);
    fireEvent.change(screen.getByLabelText("Logit edges: keep"), { target: { value: "0.05" } });
    expect(screen.getAllByTestId("prov-edge")).toHaveLength(3);
    fireEvent.keyDown(screen.getAllByTestId("prov-node")[0], { key: "Enter" });
    expect(await screen.findByText("elsewhere")).toBeInTheDocument();
  });

  it("says before tracing when no SAE sits upstream, and trains the missing layers in one click", async () => {
    const { calls } = stubFetch({
      "GET /api/saes": () => [200, [sae]],
      "GET /api/provenance/upstream": () => [200, upstream([], [1, 0])],
      "POST /api/training": () => [202, { run_id: "run_1", status: "queued" }],
    });
    renderPage(<ProvenancePage />, { path: "/provenance", route: "/provenance?sae=s1&feature=7" });
    expect(await screen.findByTestId("no-upstream")).toHaveTextContent("No SAEs below layer 2 yet");
    expect(screen.getByRole("button", { name: "Trace" })).toBeDisabled();
    fireEvent.click(screen.getByLabelText("0"));
    fireEvent.click(screen.getByRole("button", { name: "Train 1 SAE" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.url.pathname === "/api/training")).toBe(true));
    expect(calls.find((c) => c.url.pathname === "/api/training")!.body).toEqual({
      layers: [1], hook: "resid_post", d_sae: 64, architecture: "topk", k: 8, total_tokens: 200000, analyze: true,
    });
    expect(await screen.findByTestId("upstream-training")).toHaveTextContent("run_1");
  });
});
