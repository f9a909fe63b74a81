import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { FeatureDetailPage } from "./FeatureDetailPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { ExplainJob, ExplanationDetail, FeatureDetail } from "../../api/types";

const base: FeatureDetail = {
  index: 7, label: "cat", analysed: true, notes: "", starred: false, density: 0.01, max_activation: 4, top_tokens: [" cat"],
  top_contexts: [{ tokens: ["The", " cat"], activations: [0, 4], context: 0, start: 0, position: 1, max: 4 }],
  quantiles: [], histogram: { edges: [0, 1], counts: [1] }, top_positive_logits: [], top_negative_logits: [], neighbours: [],
};
const explained: ExplanationDetail = {
  text: "the animal word cat", explainer_name: "local:tiny-llama", prompt_version: "v1", scorer_name: "local:tiny-llama",
  detection: 0.875, fuzzing: 0.4375, error: null, error_kind: null, created_at: 1_700_000_000,
};
const failed: ExplanationDetail = {
  text: null, explainer_name: "openai:llama3@host", prompt_version: "v1", scorer_name: null,
  detection: null, fuzzing: null, error: "explain: no reply within 60 s", error_kind: "timeout", created_at: 1_700_000_000,
};

function setup(first: ExplanationDetail | null) {
  let detail: FeatureDetail = { ...base, explanation_detail: first };
  let current: ExplainJob | null = null;
  const stub = stubFetch({
    "GET /api/saes/s1/features/7": () => [200, detail],
    "GET /api/saes/s1/explanations/job": () => [200, current],
    "POST /api/saes/s1/explanations": (_u, init) => {
      const body = JSON.parse(String(init.body));
      current = { id: "job1", sae_id: "s1", status: "running", done: 0, total: 1, errors: 0, config: body, created_at: 1, updated_at: 1 };
      return [202, current];
    },
    "GET /api/provenance/upstream": () => [200, { sae_id: "s1", layer: 0, hook: "resid_post", available: [], missing_layers: [],
      suggested_layers: [], train: { layers: [], hook: "resid_post", d_sae: 64, architecture: "topk", k: 8 } }],
  });
  const r = renderPage(<FeatureDetailPage />, { path: "/features/:saeId/:index", route: "/features/s1/7" });
  act(() => r.ws().serverOpen());
  return { ...stub, ...r, setDetail: (e: ExplanationDetail) => (detail = { ...base, explanation_detail: e }),
    setJob: (j: Partial<ExplainJob>) => (current = { ...current!, ...j }) };
}

afterEach(() => vi.unstubAllGlobals());

describe("FeatureDetailPage explanation", () => {
  it("shows the explanation, its explainer and scores with their meaning", async () => {
    setup(explained);
    const sec = within(await screen.findByTestId("explanation"));
    expect(sec.getByTestId("explanation-text")).toHaveTextContent("the animal word cat");
    const meta = sec.getByTestId("explanation-meta");
    expect(meta).toHaveTextContent("explainer local:tiny-llama");
    expect(meta).toHaveTextContent("scored by local:tiny-llama");
    expect(sec.getByTestId("score-detection")).toHaveTextContent("0.88");
    expect(sec.getByTestId("score-fuzzing")).toHaveTextContent("0.44");
    expect(sec.getByTestId("score-fuzzing").title).toMatch(/0\.5 = chance/);
    expect(sec.getByRole("button", { name: "Re-explain this feature" })).toBeInTheDocument();
  });

  it("re-explaining an explained feature forces it (the same explainer explains it again)", async () => {
    const { calls } = setup(explained);
    const sec = within(await screen.findByTestId("explanation"));
    expect(sec.getByText(/replaces the stored explanation/)).toBeInTheDocument();
    fireEvent.click(sec.getByRole("button", { name: "Re-explain this feature" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST")).toBe(true));
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({ features: [7], explainer: "loaded", force: true });
  });

  it("shows a failed explanation's error with its kind", async () => {
    setup(failed);
    const err = await screen.findByTestId("explanation-error");
    expect(err).toHaveTextContent("Explaining failed (timeout): explain: no reply within 60 s");
    expect(screen.getByTestId("explanation-meta")).toHaveTextContent("not scored");
    expect(screen.getByTestId("score-detection")).toHaveTextContent("—");
  });

  it("explains this feature alone and reloads it when the job reports it", async () => {
    const { calls, ws, setDetail, setJob } = setup(null);
    const sec = within(await screen.findByTestId("explanation"));
    expect(sec.getByText("Not explained yet.")).toBeInTheDocument();
    fireEvent.change(sec.getByLabelText("Explainer"), { target: { value: "local" } });
    fireEvent.change(sec.getByLabelText("Explainer model"), { target: { value: "other-model" } });
    fireEvent.click(sec.getByRole("button", { name: "Explain this feature" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.url.pathname === "/api/saes/s1/explanations")).toBe(true));
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({ features: [7], explainer: "local", explainer_model: "other-model" });
    expect(await sec.findByTestId("explain-busy")).toHaveTextContent("Explaining this feature… (0 / 1)");

    const gets = () => calls.filter((c) => c.url.pathname === "/api/saes/s1/features/7").length;
    const before = gets();
    setDetail(explained);
    setJob({ status: "done", done: 1 });
    act(() => ws().serverSend({ type: "job", job_id: "job1", kind: "explain", status: "running", done: 1, total: 1, detail: "feature 7: explained", ts: 1 }));
    await waitFor(() => expect(gets()).toBeGreaterThan(before));
    expect(await sec.findByTestId("explanation-text")).toHaveTextContent("the animal word cat");
    act(() => ws().serverSend({ type: "job", job_id: "job1", kind: "explain", status: "done", done: 1, total: 1, ts: 1 }));
    expect(await sec.findByRole("button", { name: "Re-explain this feature" })).toBeInTheDocument();
  });
});
