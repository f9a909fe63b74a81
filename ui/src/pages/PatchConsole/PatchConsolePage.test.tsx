import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import { PatchConsolePage } from "./PatchConsolePage";
import { parseFeatureList } from "./PatchForm";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { Patch } from "../../api/types";

const patch: Patch = {
  id: "p1", name: "steer 5", sae_id: "s1", features: [5], mode: "steer", strength: 4, enabled: true, applied: true,
  created_at: 1, updated_at: 1, exportable_as_peft: true, hook_name: "blocks.1.hook_resid_post", model_id: "tiny", rank: 1,
  target_modules: ["model.layers.1.mlp.down_proj"], strength_unit: "absolute", unit_scale: 1, unit_source: "",
  absolute_strength: 4, origin: null,
};
const activations = (features: number[], values: number[][]) => ({
  tokens: ["The", " capital"], token_ids: [1, 2], per_token: [[], []], bos_excluded: true,
  features: features.map((index, j) => ({ index, label: "", max: Math.max(...values[j]), activations: values[j] })),
});
const tok = (token: string, id: number, prob: number) => ({ token, id, prob, logit: Math.log(prob) });

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
  sessionStorage.clear();
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
      "POST /api/saes/s1/activations": () => [200, activations([5], [[0.5, 2]])],
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
    // letting go of the slider commits over the socket; the slider never PATCHes
    fireEvent.pointerUp(screen.getByTestId("strength-slider"));
    expect(ws().sent.map((s) => JSON.parse(s))).toContainEqual({ type: "commit_strength", patch_id: "p1" });
    expect(calls.some((c) => c.method === "PATCH")).toBe(false);
    // an explicit edit in the number box PATCHes
    const box = screen.getByLabelText("Strength of steer 5");
    fireEvent.change(box, { target: { value: "7" } });
    fireEvent.blur(box);
    await waitFor(() => expect(calls.some((c) => c.method === "PATCH" && (c.body as { strength: number }).strength === 7)).toBe(true));

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

  it("shows each patched feature on the prompt and says when it is inactive", async () => {
    const ablate: Patch = { ...patch, id: "p2", name: "ablate 9", mode: "ablate", features: [9], strength: 1, absolute_strength: 1 };
    const group: Patch = { ...patch, id: "p3", name: "group", mode: "ablate", features: [5, 9], enabled: false, origin: "contrast" };
    stubFetch({
      "GET /api/patches": () => [200, [patch, ablate, group]],
      "GET /api/saes": () => [200, []],
      "POST /api/saes/s1/activations": (_u, init) => {
        const feats = JSON.parse(String(init.body)).features as number[];
        return [200, activations(feats, feats.map((f) => (f === 9 ? [0, 0] : [0.5, 2])))];
      },
    });
    renderPage(<PatchConsolePage />, { path: "/patches", route: "/patches" });
    const rows = await screen.findAllByTestId("patch-row");
    await waitFor(() => expect(rows[1].querySelector("[data-testid=inactive-notice]")).toBeTruthy());
    expect(rows[1]).toHaveTextContent("Feature 9 is inactive on this prompt: ablating it changes nothing here");
    // the active feature gets a strip of its activation per token
    await waitFor(() => expect(rows[0].querySelectorAll("[data-testid=tok]").length).toBe(2));
    expect(rows[0].querySelector("[data-testid=inactive-notice]")).toBeNull();
    // a group made on the Contrast page says where it came from and that it is off
    expect(rows[2]).toHaveTextContent("from Contrast page");
    expect(rows[2].querySelector("[data-testid=origin-note]")).toBeTruthy();
    await waitFor(() => expect(rows[2]).toHaveTextContent("Inactive on this prompt: 9."));
  });

  it("keeps the prompt for the session and clears old results on an error, showing it once", async () => {
    let fail = false;
    stubFetch({
      "GET /api/patches": () => [200, []],
      "GET /api/saes": () => [200, []],
      "POST /api/inference": () => (fail
        ? [422, { detail: "text is 2000 tokens long; the limit is 1024 (IWB_MAX_PROMPT_TOKENS)" }]
        : [200, { original: [tok(" Paris", 1, 0.6)], patched: [tok(" Paris", 1, 0.6)], moved: [], kl: 0, patch_ids: [],
          n_tokens: 6, compute_ms: 1 }]),
    });
    const first = renderPage(<PatchConsolePage />, { path: "/patches", route: "/patches" });
    const box = await screen.findByLabelText("Text");
    fireEvent.change(box, { target: { value: "A prompt of my own" } });
    fireEvent.click(screen.getByRole("button", { name: "Compare now" }));
    expect(await screen.findByTestId("kl")).toBeInTheDocument();
    fail = true;
    fireEvent.click(screen.getByRole("button", { name: "Compare now" }));
    await screen.findByText(/the limit is 1024/);
    act(() => first.ws().serverSend({ type: "error", detail: "text is 2000 tokens long; the limit is 1024 (IWB_MAX_PROMPT_TOKENS)" }));
    expect(screen.queryByTestId("kl")).toBeNull();
    expect(screen.getAllByText(/the limit is 1024/)).toHaveLength(1);
    first.unmount();
    renderPage(<PatchConsolePage />, { path: "/patches", route: "/patches" });
    expect(await screen.findByLabelText("Text")).toHaveValue("A prompt of my own");
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
