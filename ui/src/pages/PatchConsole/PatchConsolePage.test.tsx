import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import { PatchConsolePage } from "./PatchConsolePage";
import { parseFeatureList } from "./PatchForm";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { Patch } from "../../api/types";

const patch: Patch = {
  id: "p1", name: "steer 5", sae_id: "s1", features: [5], mode: "steer", strength: 4, enabled: true, applied: true,
  created_at: 1, updated_at: 1, exportable_as_peft: true, hook_name: "blocks.1.hook_resid_post", model_id: "tiny", rank: 1,
  target_modules: ["model.layers.1.mlp.down_proj"],
};
const tok = (token: string, id: number, prob: number) => ({ token, id, prob, logit: Math.log(prob) });

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("parseFeatureList", () => {
  it("parses and rejects", () => {
    expect(parseFeatureList("3, 17 42,3")).toEqual([3, 17, 42]);
    expect(() => parseFeatureList("3, x")).toThrow('"x" is not a feature index');
  });
});

describe("PatchConsolePage", () => {
  it("subscribes to logits, sends slider moves over the socket, and draws pushed logits", async () => {
    const { calls } = stubFetch({
      "GET /api/patches": () => [200, [patch]],
      "GET /api/saes": () => [200, []],
      "PATCH /api/patches/p1": (_u, init) => [200, { ...patch, ...JSON.parse(String(init.body)) }],
    });
    const { ws } = renderPage(<PatchConsolePage />, { path: "/patches", route: "/patches" });
    act(() => ws().serverOpen());
    await screen.findByTestId("patch-row");
    await waitFor(() =>
      expect(ws().sent.map((s) => JSON.parse(s))).toContainEqual({
        type: "subscribe_logits", text: "The capital of France is", patch_ids: ["p1"], top_k: 10,
      }),
    );

    fireEvent.change(screen.getByTestId("strength-slider"), { target: { value: "12" } });
    expect(ws().sent.map((s) => JSON.parse(s))).toContainEqual({ type: "set_strength", patch_id: "p1", strength: 12 });
    await waitFor(() => expect(calls.some((c) => c.method === "PATCH" && (c.body as { strength: number }).strength === 12)).toBe(true));

    act(() =>
      ws().serverSend({
        type: "logits", seq: 1, text: "The capital of France is", patch_ids: ["p1"], kl: 0.25,
        original: [tok(" Paris", 1, 0.6)], patched: [tok(" Paris", 1, 0.2)],
        moved: [{ token: " Paris", id: 1, original_probability: 0.6, patched_probability: 0.2, delta: -0.4 }],
      }),
    );
    expect(screen.getByTestId("kl")).toHaveTextContent("0.25");
    expect(screen.getByTestId("bar-patched").getAttribute("data-value")).toBe("0.2");

    // a stale answer for another prompt is ignored
    act(() => ws().serverSend({ type: "logits", seq: 2, text: "old", patch_ids: [], kl: 9, original: [], patched: [], moved: [] }));
    expect(screen.getByTestId("kl")).toHaveTextContent("0.25");
  });

  it("falls back to REST inference and shows its errors", async () => {
    stubFetch({
      "GET /api/patches": () => [200, []],
      "GET /api/saes": () => [200, []],
      "POST /api/inference": () => [400, { detail: "No model loaded" }],
    });
    renderPage(<PatchConsolePage />, { path: "/patches", route: "/patches" });
    fireEvent.click(await screen.findByRole("button", { name: "Compare now" }));
    expect(await screen.findByText("No model loaded")).toBeInTheDocument();
  });
});
