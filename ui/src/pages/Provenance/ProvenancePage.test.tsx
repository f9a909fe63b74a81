import { fireEvent, screen } from "@testing-library/react";
import { ProvenancePage } from "./ProvenancePage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import { edges, nodes } from "../../charts/ProvenanceGraph/fixtures";

afterEach(() => vi.unstubAllGlobals());

describe("ProvenancePage", () => {
  it("queries the graph, renders it with validation, prunes, and opens a node", async () => {
    const { calls } = stubFetch({
      "GET /api/saes": () => [200, [{ id: "s1", name: "s1", model_id: "m", hook_name: "blocks.2.hook_resid_post", layer: 2, d_in: 8, d_sae: 64, architecture: "topk", created_at: 1, source: "trained" }]],
      "GET /api/provenance": () => [200, {
        nodes: nodes.map((n) => ({ ...n, sae_id: "s1" })), edges,
        validation: { edges: [{ source: "L1/3", target: "L2/7", predicted: 0.9, actual: 0.7 }], correlation: 0.93 },
      }],
    });
    renderPage(<ProvenancePage />, { path: "/provenance", route: "/provenance?sae=s1&feature=7" });
    await screen.findByRole("option", { name: /blocks.2/ });
    fireEvent.click(screen.getByRole("button", { name: "Trace" }));
    await screen.findAllByTestId("prov-node");
    const q = calls.find((c) => c.url.pathname === "/api/provenance")!.url.searchParams;
    expect(Object.fromEntries(q)).toEqual({ sae_id: "s1", feature: "7", depth: "2", top_k: "5" });
    expect(screen.getByTestId("prov-correlation")).toHaveTextContent("0.93");
    expect(screen.getAllByTestId("prov-edge")).toHaveLength(4);
    fireEvent.change(screen.getByLabelText("Prune |weight| below"), { target: { value: "0.6" } });
    expect(screen.getAllByTestId("prov-edge")).toHaveLength(1);
    fireEvent.keyDown(screen.getAllByTestId("prov-node")[0], { key: "Enter" });
    expect(await screen.findByText("elsewhere")).toBeInTheDocument();
  });
});
