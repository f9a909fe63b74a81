import { fireEvent, screen, waitFor } from "@testing-library/react";
import { FeatureDetailPage } from "./FeatureDetailPage";
import { tokenWeights } from "./TokenCloud";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { FeatureDetail } from "../../api/types";

const detail: FeatureDetail = {
  index: 7, label: "cat", analysed: true, notes: "", starred: false, density: 0.01, max_activation: 4, top_tokens: [" cat"],
  top_contexts: [{ tokens: ["The", " cat", " sat"], activations: [0, 4, 1], context: 0, start: 0, position: 1, max: 4 }],
  quantiles: [{ label: "0–50% of max", examples: [{ tokens: ["a", " cat"], activations: [0, 1], context: 1, start: 0, position: 1, max: 1 }], lo: 0, hi: 2 }],
  histogram: { edges: [0, 1, 2], counts: [5, 2] },
  top_positive_logits: [{ token: " meow", id: 5, value: 1.5 }], top_negative_logits: [{ token: " dog", id: 6, value: -0.5 }],
  neighbours: [{ index: 9, label: "kitten", score: 0.8 }],
};

afterEach(() => vi.unstubAllGlobals());

describe("tokenWeights", () => {
  it("sums activations per firing token", () => {
    expect(tokenWeights([{ tokens: ["a", "b", "a"], activations: [1, 0, 2], context: 0, start: 0, position: 2, max: 2 }])).toEqual([{ token: "a", weight: 3 }]);
  });
  it("counts byte pieces of one character as that character", () => {
    const c = { tokens: ["x", " <0xE2>", "<0x80>", "<0x9C>"], activations: [0, 1, 3, 2], context: 0, start: 0, position: 2, max: 3 };
    expect(tokenWeights([c])).toEqual([{ token: " “", weight: 3 }]);
  });
});

describe("FeatureDetailPage", () => {
  it("shows contexts, charts and neighbours; saves the label; runs the feature on text", async () => {
    const { calls } = stubFetch({
      "GET /api/saes/s1/features/7": () => [200, detail],
      "PATCH /api/saes/s1/features/7": (_u, init) => [200, { ...detail, ...JSON.parse(String(init.body)) }],
      "POST /api/saes/s1/activations": () => [200, { tokens: ["my", " cat"], features: [{ index: 7, label: "cat", activations: [0, 3] }] }],
      "GET /api/provenance/upstream": () => [200, { sae_id: "s1", layer: 0, hook: "resid_post", available: [], missing_layers: [],
        suggested_layers: [], train: { layers: [], hook: "resid_post", d_sae: 64, architecture: "topk", k: 8 } }],
    });
    renderPage(<FeatureDetailPage />, { path: "/features/:saeId/:index", route: "/features/s1/7" });
    expect(await screen.findByRole("heading", { level: 1 })).toHaveTextContent("Feature 7");
    expect(screen.getAllByTestId("hist-bar")).toHaveLength(2);
    expect(screen.getAllByTestId("signed-row")).toHaveLength(2);
    expect(screen.getByRole("link", { name: "#9" })).toHaveAttribute("href", "/features/s1/9");

    // token cloud hover outlines the token in the contexts
    fireEvent.mouseEnter(screen.getByRole("button", { name: "·cat" }));
    expect(document.querySelectorAll(".tok-hl").length).toBeGreaterThan(0);

    fireEvent.change(screen.getByLabelText("Label"), { target: { value: "cats" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(calls.some((c) => c.method === "PATCH")).toBe(true));
    expect(calls.find((c) => c.method === "PATCH")!.body).toEqual({ label: "cats", notes: "" });

    fireEvent.change(screen.getByLabelText("Text"), { target: { value: "my cat" } });
    fireEvent.click(screen.getByRole("button", { name: "Run feature" }));
    expect(await screen.findByLabelText("Activations on your text")).toBeInTheDocument();
    expect(calls.find((c) => c.url.pathname.endsWith("/activations"))!.body).toEqual({ text: "my cat", features: [7] });
  });

  it("shows a readable error when the feature is missing", async () => {
    stubFetch({ "GET /api/saes/s1/features/99": () => [404, { detail: "Feature 99 out of range (d_sae=64)" }] });
    renderPage(<FeatureDetailPage />, { path: "/features/:saeId/:index", route: "/features/s1/99" });
    expect(await screen.findByRole("alert")).toHaveTextContent("Feature 99 out of range");
  });
});
