import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { FeaturesPage } from "./FeaturesPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { ExplainJob, FeatureSummary } from "../../api/types";

const features: FeatureSummary[] = Array.from({ length: 40 }, (_, i) => ({
  index: i, label: `feature ${i}`, density: 0.1, max_activation: i, top_tokens: ["a"], starred: i === 3 || i === 5,
}));
features[0] = { ...features[0], user_label: "my cats", label: "my cats", explanation: "the word cat", detection: 0.8125, fuzzing: 0.5 };
features[1] = { ...features[1], explanation: "commas in lists", detection: 0.4, fuzzing: null };
features[4] = { ...features[4], explanation: null, explanation_error: "explanation: the model refused: I can't help with that.", explanation_error_kind: "refused" };
features[6] = { ...features[6], explanation: "dates", detection: 0.7, explanation_error: "fuzzing: no reply within 60 s", explanation_error_kind: "timeout" };

const job = (over: Partial<ExplainJob>): ExplainJob => ({
  id: "job1", sae_id: "s1", status: "running", done: 0, total: 2, errors: 0, error: null,
  config: { features: [3, 5], explainer: "local" }, created_at: 1, updated_at: 1, ...over,
});

function setup(initial: ExplainJob | null = null) {
  let current = initial;
  const stub = stubFetch({
    "GET /api/saes": () => [200, [{ id: "s1", name: "s1", model_id: "m", hook_name: "blocks.0.hook_resid_post", layer: 0, d_in: 16, d_sae: 40, architecture: "topk", created_at: 1, source: "trained" }]],
    "GET /api/saes/s1/analysis": () => [200, { sae_id: "s1", status: "done", n_tokens: 1000 }],
    "GET /api/saes/s1/features": (u) => {
      const off = Number(u.searchParams.get("offset"));
      const lim = Number(u.searchParams.get("limit"));
      return [200, { items: features.slice(off, off + lim), total: features.length, offset: off, limit: lim }];
    },
    "GET /api/saes/s1/explanations/job": () => [200, current],
    "POST /api/saes/s1/explanations": (_u, init) => {
      const body = JSON.parse(String(init.body));
      current = job({ status: "running", total: body.features?.length ?? 40, config: body });
      return [202, current];
    },
    "POST /api/saes/s1/explanations/cancel": () => [202, current],
    "POST /api/saes/s1/explanations/resume": () => {
      current = job({ id: "job2", status: "running", done: 1, total: 2 });
      return [202, current];
    },
  });
  const r = renderPage(<FeaturesPage />, { path: "/features/:saeId", route: "/features/s1" });
  act(() => r.ws().serverOpen());
  const setJob = (j: ExplainJob) => (current = j);
  return { ...stub, ...r, setJob };
}

const posts = (calls: { method: string; url: URL; body: unknown }[], path: string) =>
  calls.filter((c) => c.method === "POST" && c.url.pathname === path);

afterEach(() => vi.unstubAllGlobals());

describe("FeaturesPage explanations", () => {
  it("explains the shown features with a local explainer and follows the job's events to the end", async () => {
    const { calls, ws, setJob } = setup();
    expect(await screen.findByTestId("explain-status")).toHaveTextContent("none yet");
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("40 shown of 40"));
    fireEvent.click(screen.getByLabelText("Starred only"));
    await waitFor(() => expect(screen.getAllByTestId("feature-row")).toHaveLength(2));

    fireEvent.change(screen.getByLabelText("Explainer"), { target: { value: "local" } });
    const go = screen.getByRole("button", { name: "Explain features" });
    expect(go).toBeDisabled(); // a local explainer needs a model name
    fireEvent.change(screen.getByLabelText("Explainer model"), { target: { value: " tiny-llama " } });
    expect(screen.getByLabelText("Explain")).toHaveDisplayValue("the 2 shown");
    fireEvent.click(go);
    await waitFor(() => expect(posts(calls, "/api/saes/s1/explanations")).toHaveLength(1));
    expect(posts(calls, "/api/saes/s1/explanations")[0].body).toEqual({ features: [3, 5], explainer: "local", explainer_model: "tiny-llama", score: true });

    expect(await screen.findByRole("button", { name: "Cancel" })).toBeInTheDocument();
    expect(screen.getByTestId("explain-progress")).toHaveTextContent("0 / 2 features");
    const send = (status: string, done: number, detail: string) =>
      act(() => ws().serverSend({ type: "job", job_id: "job1", kind: "explain", status, done, total: 2, detail, ts: 1 }));
    send("running", 0, "sampling 256 contexts for negatives");
    expect(screen.getByTestId("explain-progress")).toHaveTextContent("0 / 2 features · sampling 256 contexts for negatives");
    send("running", 1, "feature 3: explained");
    expect(screen.getByRole("progressbar", { name: "Explanation progress" })).toHaveAttribute("aria-valuenow", "50");
    send("running", 2, "feature 5: timeout");
    expect(screen.getByTestId("explain-progress")).toHaveTextContent("2 / 2 features · 1 error");
    // another kind's job with the same counts changes nothing
    act(() => ws().serverSend({ type: "job", job_id: "c1", kind: "circuit", status: "running", done: 0, total: 9, ts: 1 }));
    expect(screen.getByTestId("explain-progress")).toHaveTextContent("2 / 2 features · 1 error");

    const lists = () => calls.filter((c) => c.url.pathname === "/api/saes/s1/features").length;
    const before = lists();
    setJob(job({ status: "done", done: 2, errors: 1 }));
    send("done", 2, "1 of 2 features with an error");
    await waitFor(() => expect(screen.getByTestId("explain-status")).toHaveTextContent("done"));
    await waitFor(() => expect(lists()).toBeGreaterThan(before)); // explanations land on the rows
    expect(screen.queryByRole("progressbar", { name: "Explanation progress" })).toBeNull();
    expect(screen.getByTestId("explain-progress")).toHaveTextContent("2 / 2 features · 1 error");
  });

  it("explains the selected feature or all of them, with the endpoint explainer and no scoring", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("40 shown of 40"));
    act(() => void fireEvent.keyDown(window, { key: "j" }));
    fireEvent.change(screen.getByLabelText("Explain"), { target: { value: "selected" } });
    fireEvent.change(screen.getByLabelText("Explainer"), { target: { value: "endpoint" } });
    fireEvent.click(screen.getByLabelText("Score"));
    fireEvent.click(screen.getByRole("button", { name: "Explain features" }));
    await waitFor(() => expect(posts(calls, "/api/saes/s1/explanations")).toHaveLength(1));
    expect(posts(calls, "/api/saes/s1/explanations")[0].body).toEqual({ features: [1], explainer: "endpoint", score: false });
  });

  it("explains the first N shown rows in the list's order", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("40 shown of 40"));
    fireEvent.change(screen.getByLabelText("at most"), { target: { value: "3" } });
    fireEvent.click(screen.getByRole("button", { name: "Explain features" }));
    await waitFor(() => expect(posts(calls, "/api/saes/s1/explanations")).toHaveLength(1));
    expect(posts(calls, "/api/saes/s1/explanations")[0].body).toEqual({ features: [0, 1, 2], explainer: "loaded", score: true });
  });

  it("re-explains features already explained when asked to (force)", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("40 shown of 40"));
    fireEvent.change(screen.getByLabelText("at most"), { target: { value: "2" } });
    fireEvent.click(screen.getByLabelText("Re-explain explained ones"));
    fireEvent.click(screen.getByRole("button", { name: "Explain features" }));
    await waitFor(() => expect(posts(calls, "/api/saes/s1/explanations")).toHaveLength(1));
    expect(posts(calls, "/api/saes/s1/explanations")[0].body).toEqual({ features: [0, 1], explainer: "loaded", score: true, force: true });
  });

  it("marks rows whose explanation failed, with the stored error on hover", async () => {
    setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("40 shown of 40"));
    const rows = screen.getAllByTestId("feature-row");
    const failed = within(rows[4]).getByTestId("explanation-error-mark");
    expect(failed).toHaveTextContent("refused");
    expect(failed).toHaveAttribute("title", "explanation: the model refused: I can't help with that.");
    expect(within(rows[4]).getByTestId("explanation-cell")).not.toHaveTextContent("—");
    // a partial failure (scoring timed out) keeps the explanation beside the marker
    const partial = within(rows[6]);
    expect(partial.getByTestId("explanation-error-mark")).toHaveAttribute("title", "fuzzing: no reply within 60 s");
    expect(partial.getByTestId("explanation-cell")).toHaveTextContent("timeout dates");
    expect(within(rows[0]).queryByTestId("explanation-error-mark")).toBeNull();
    expect(within(rows[2]).queryByTestId("explanation-error-mark")).toBeNull();
  });

  it("asks for every analysed feature with features null", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("40 shown of 40"));
    fireEvent.change(screen.getByLabelText("Explain"), { target: { value: "all" } });
    fireEvent.click(screen.getByRole("button", { name: "Explain features" }));
    await waitFor(() => expect(posts(calls, "/api/saes/s1/explanations")).toHaveLength(1));
    expect(posts(calls, "/api/saes/s1/explanations")[0].body).toEqual({ features: null, explainer: "loaded", score: true });
  });

  it("cancels a running job and resumes a stopped one", async () => {
    const { calls, ws, setJob } = setup(job({ done: 1 }));
    fireEvent.click(await screen.findByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(posts(calls, "/api/saes/s1/explanations/cancel")).toHaveLength(1));
    setJob(job({ status: "cancelled", done: 1 }));
    act(() => ws().serverSend({ type: "job", job_id: "job1", kind: "explain", status: "cancelled", done: 1, total: 2, ts: 1 }));
    fireEvent.click(await screen.findByRole("button", { name: "Resume" }));
    await waitFor(() => expect(posts(calls, "/api/saes/s1/explanations/resume")).toHaveLength(1));
    expect(await screen.findByRole("button", { name: "Cancel" })).toBeInTheDocument();
    expect(screen.getByTestId("explain-progress")).toHaveTextContent("1 / 2 features");
  });

  it("picks up a job started elsewhere when its first event arrives", async () => {
    const { calls, ws, setJob } = setup();
    expect(await screen.findByTestId("explain-status")).toHaveTextContent("none yet");
    const gets = () => calls.filter((c) => c.url.pathname === "/api/saes/s1/explanations/job").length;
    const before = gets();
    setJob(job({ id: "job9", done: 1 }));
    act(() => ws().serverSend({ type: "job", job_id: "job9", kind: "explain", status: "running", done: 1, total: 2, ts: 1 }));
    await waitFor(() => expect(gets()).toBe(before + 1));
    await waitFor(() => expect(screen.getByTestId("explain-status")).toHaveTextContent("running"));
  });

  it("shows the explanation with formatted scores and their meaning, the user's label first, and sorts by scores", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("40 shown of 40"));
    const row0 = within(screen.getAllByTestId("feature-row")[0]);
    expect(row0.getByText("my cats")).toBeInTheDocument();
    expect(row0.getByTestId("explanation-cell")).toHaveTextContent("the word cat");
    expect(row0.getByTestId("score-detection")).toHaveTextContent("0.81");
    expect(row0.getByTestId("score-detection").title).toMatch(/balanced accuracy.*0\.5 = chance/);
    expect(row0.getByTestId("score-fuzzing")).toHaveTextContent("0.50");
    const row1 = within(screen.getAllByTestId("feature-row")[1]);
    expect(row1.getByTestId("score-fuzzing")).toHaveTextContent("—");
    expect(within(screen.getAllByTestId("feature-row")[2]).getByTestId("explanation-cell")).toHaveTextContent("—");

    const sorts = () => calls.filter((c) => c.url.pathname === "/api/saes/s1/features").map((c) => c.url.searchParams.get("sort"));
    fireEvent.click(screen.getByRole("button", { name: /Detect\./ }));
    await waitFor(() => expect(sorts()).toContain("-detection"));
    expect(screen.getByRole("columnheader", { name: /Detect\./ })).toHaveAttribute("aria-sort", "descending");
    fireEvent.click(screen.getByRole("button", { name: /Fuzz\./ }));
    await waitFor(() => expect(sorts()).toContain("-fuzzing"));
    fireEvent.click(screen.getByRole("button", { name: /Fuzz\./ }));
    await waitFor(() => expect(sorts()).toContain("fuzzing"));

    fireEvent.change(screen.getByLabelText(/Search/), { target: { value: "cat" } });
    await waitFor(() => expect(calls.some((c) => c.url.searchParams.get("q") === "cat")).toBe(true));
  });
});
