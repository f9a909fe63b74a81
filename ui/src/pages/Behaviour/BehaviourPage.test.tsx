import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { BehaviourPage } from "./BehaviourPage";
import { BOUNDS, fromSlider, outOfBounds, toSlider, type NumberSpec } from "./NumberSlider";
import { parseJsonl, parseTargetTokens, promptLines } from "./prompts";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { components } from "../../api/schema";

type S = components["schemas"];

afterEach(() => vi.unstubAllGlobals());

const split = (before: number, after: number, kl = 0.002, change = 0.01): S["SplitMetrics"] => ({
  n_positive: 2, n_negative: 2, target_before: before, target_after: after, target_ratio: after / before,
  kl_mean: kl, kl_max: kl * 2, max_target_change: change,
});
const edit = (n: number, mode: S["EditWire"]["mode"] = "ablate"): S["EditWire"] => ({
  sae_id: "sae_l1", hook_name: "blocks.1.hook_resid_post", layer: 1, mode, strength: 1, features: Array.from({ length: n }, (_, i) => 10 + i),
});
/** The three candidates of the test job: #1 is the best within budget, #2 lowers the target most but is over budget. */
const CANDS = [
  { index: 0, stage: "screen", edits: [edit(1)], search: split(0.4, 0.3), held_out: split(0.5, 0.35), feasible: true, objective: 0.76, budget_use: 0.2 },
  { index: 1, stage: "screen", edits: [edit(4)], search: split(0.4, 0.04), held_out: split(0.5, 0.06), feasible: true, objective: 0.105, budget_use: 0.5 },
  { index: 2, stage: "refine", edits: [edit(8, "scale")], search: split(0.4, 0.01, 0.5, 0.3), held_out: split(0.5, 0.02), feasible: false, objective: 0.05, budget_use: 3 },
];
const wire = (c: (typeof CANDS)[number], pareto: boolean): S["CandidateWire"] => ({ ...c, held_out_budget_use: c.budget_use, pareto, attempt: 0 });
const request: S["RemoveBehaviourRequest"] = { positive: ["a", "b"], negative: ["c", "d"], target_text: " purple", max_evaluations: 20 };
const summary = (status: S["BehaviourJobSummary"]["status"], n: number): S["BehaviourJobSummary"] => ({
  id: "bh_1", name: null, model_id: "tiny", status, phase: status === "done" ? "done" : "searching", n_evaluated: n,
  max_evaluations: 20, attempt: 0, error: null, created_at: 1_700_000_000, updated_at: 1_700_000_000,
});
const report: S["BehaviourReport"] = {
  target_ids: [42], target_tokens: [" purple"], target_notes: [], feasible: true, held_out_feasible: true,
  held_out: split(0.5, 0.06, 0.003, 0.02), search: split(0.4, 0.04),
  held_out_positive: [{ text: "a", target_before: 0.5, target_after: 0.06, kl: 0.1 }], held_out_negative: [],
  edits: [{ patch_id: "p_9", sae_id: "sae_l1", hook_name: "blocks.1.hook_resid_post", layer: 1, mode: "ablate", strength: 1, rank: 4,
    features: [{ index: 10, label: "colours", top_tokens: [" red"], effect_size: 2.5 }] }],
  patch_ids: ["p_9"], edit_set: "bh_1", best_candidate: 1, pareto: [1, 2], peft_exportable: true,
  export_note: "GET /api/behaviours/bh_1/export gives one PEFT adapter.", n_evaluated: 3, exhausted: false, seconds: 4.2, notes: [],
};
const detail = (status: S["BehaviourJobSummary"]["status"], n: number): S["BehaviourJob"] => ({
  ...summary(status, n), request, sae_ids: ["sae_l1"], missing_layers: [], training_run_id: null,
  best: n >= 2 ? wire(CANDS[1], false) : null, report: status === "done" ? report : null,
});
const patch = { id: "p_10", name: "bh_1 #1", sae_id: "sae_l1", features: [10, 11, 12, 13], mode: "ablate", strength: 1, enabled: true };

const rowIndices = () => screen.getAllByTestId("candidate-row").map((r) => r.getAttribute("data-index"));

describe("BehaviourPage", () => {
  it("starts a job, fills the candidate table from socket events, highlights the best, reports and makes patches", async () => {
    let jobs: S["BehaviourJobSummary"][] = [];
    let status: S["BehaviourJobSummary"]["status"] = "running";
    const { calls } = stubFetch({
      "GET /api/model": () => [200, { status: "ready", model_id: "tiny", n_layers: 2 }],
      "GET /api/saes": () => [200, [{ id: "sae_l1", name: "l1", model_id: "tiny", hook_name: "blocks.1.hook_resid_post", layer: 1, kind: "sae" }]],
      "GET /api/behaviours": () => [200, jobs],
      "POST /api/behaviours/remove": () => {
        jobs = [summary("running", 0)];
        return [202, { job_id: "bh_1", status: "queued" }];
      },
      "GET /api/behaviours/bh_1": () => [200, detail(status, status === "done" ? 3 : 0)],
      "GET /api/behaviours/bh_1/candidates": () => [200, status === "done" ? CANDS.map((c) => wire(c, c.index !== 0)) : []],
      "POST /api/behaviours/bh_1/candidates/1/patch": () => [201, [patch]],
      "GET /api/patches": () => [200, []],
      "GET /api/behaviours/bh_1/export": () => [200, "zip bytes"],
    });
    const saved: string[] = [];
    // jsdom has no object URLs: give the download link one, and record the file name it would save
    const urlStatics = URL as unknown as Record<string, unknown>;
    const urlSaved = { createObjectURL: urlStatics.createObjectURL, revokeObjectURL: urlStatics.revokeObjectURL };
    Object.assign(urlStatics, { createObjectURL: () => "blob:bh", revokeObjectURL: () => undefined });
    const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      saved.push(this.download);
    });
    const { ws } = renderPage(<BehaviourPage />, { path: "/behaviour", route: "/behaviour" });
    act(() => ws().serverOpen());

    fireEvent.change(await screen.findByLabelText(/Positive prompts/), { target: { value: "My favourite colour is\nThe sky turned\n\n" } });
    fireEvent.change(screen.getByLabelText(/Negative prompts/), { target: { value: "The capital of France is\nOne, two," } });
    expect(screen.getByTestId("bh-positive-count")).toHaveTextContent("2 prompts");
    expect(screen.getByRole("button", { name: "Start" })).toBeDisabled(); // no target yet
    fireEvent.change(screen.getByLabelText("Target text"), { target: { value: " purple" } });
    fireEvent.change(screen.getByLabelText("Max evaluations"), { target: { value: "20" } });
    fireEvent.change(screen.getByLabelText("Max KL"), { target: { value: "0" } }); // the server wants > 0
    expect(screen.getByTestId("bh-not-ready")).toHaveTextContent("Max KL must be above 0");
    expect(screen.getByRole("button", { name: "Start" })).toBeDisabled();
    fireEvent.change(screen.getByLabelText("Max KL slider"), { target: { value: String(toSlider(BOUNDS["budget.max_kl"], 0.02)) } });
    fireEvent.change(screen.getByLabelText("Max features"), { target: { value: "8" } });
    fireEvent.click(screen.getByRole("checkbox", { name: "clamp" }));
    fireEvent.change(screen.getByLabelText("Layers"), { target: { value: "1" } });
    fireEvent.click(screen.getByRole("button", { name: "Start" }));

    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.url.pathname === "/api/behaviours/remove")).toBe(true));
    const body = calls.find((c) => c.url.pathname === "/api/behaviours/remove")!.body as Record<string, unknown>;
    expect(body).toEqual({
      positive: ["My favourite colour is", "The sky turned"], negative: ["The capital of France is", "One, two,"],
      target_text: " purple", budget: { max_kl: fromSlider(BOUNDS["budget.max_kl"], toSlider(BOUNDS["budget.max_kl"], 0.02)), max_target_change: 0.05 },
      max_evaluations: 20, max_features: 8, modes: ["ablate", "scale"], positions: ["last", "max"], held_out_fraction: 0.5,
      search_margin: 0.5, seed: 0, enable_result: true, layers: [1],
    });
    expect((body.budget as { max_kl: number }).max_kl).toBeCloseTo(0.02, 3);

    // the new job opens; its candidates arrive on the socket
    expect(await screen.findByText("No candidate evaluated yet.")).toBeInTheDocument();
    for (const [i, best] of [[0, 0], [1, 1], [2, 1]] as const) {
      act(() => ws().serverSend({ type: "behaviour_candidate", ts: i, job_id: "bh_1", ...CANDS[i], best_index: best }));
      act(() => ws().serverSend({ type: "job", ts: i, job_id: "bh_1", kind: "behaviour_removal", status: "running", done: i + 1, total: 20, detail: "searching" }));
    }
    // an event of another job changes nothing here
    act(() => ws().serverSend({ type: "behaviour_candidate", ts: 9, job_id: "bh_0", ...CANDS[0], index: 7, best_index: 7 }));
    await waitFor(() => expect(rowIndices()).toEqual(["0", "1", "2"]));
    expect(screen.getByTestId("candidate-count")).toHaveTextContent("3");
    expect(screen.getByRole("progressbar", { name: "Search progress" })).toHaveAttribute("aria-valuenow", "15");
    const bestRow = screen.getAllByTestId("candidate-row").find((r) => r.getAttribute("data-best") === "true")!;
    expect(bestRow).toHaveAttribute("data-index", "1");
    expect(within(bestRow).getByTestId("candidate-features")).toHaveTextContent("4");
    expect(bestRow).toHaveTextContent("0.400 → 0.040 −90%");
    expect(screen.getAllByTestId("candidate-row")[2]).toHaveTextContent("3.000 over");
    expect(screen.getAllByTestId("candidate-row")[2]).toHaveTextContent("L1 scale 1 ×8");

    // sorting: within budget first, then by objective; then by held-out target after
    fireEvent.change(screen.getByLabelText("Sort"), { target: { value: "objective" } });
    expect(rowIndices()).toEqual(["1", "0", "2"]);
    fireEvent.change(screen.getByLabelText("Sort"), { target: { value: "held_out" } });
    expect(rowIndices()).toEqual(["2", "1", "0"]);
    fireEvent.click(screen.getByRole("checkbox", { name: "within budget only" }));
    expect(rowIndices()).toEqual(["1", "0"]);

    // the job ends: the report arrives and the candidates gain their Pareto flags
    status = "done";
    jobs = [summary("done", 3)];
    act(() => ws().serverSend({ type: "job", ts: 5, job_id: "bh_1", kind: "behaviour_removal", status: "done", done: 3, total: 20, detail: "done" }));
    expect(await screen.findByTestId("report-target")).toHaveTextContent("0.500 → 0.060 (−88%; ratio 0.120)");
    expect(screen.getByTestId("report-side")).toHaveTextContent("KL mean 0.003, max 0.006 nats; largest target change 0.020");
    expect(screen.getByTestId("report-targets")).toHaveTextContent("·purple");
    expect(screen.getByTestId("report-edit")).toHaveTextContent("#10 colours");
    expect(screen.getByRole("link", { name: "#10 colours" })).toHaveAttribute("href", "/features/sae_l1/10");
    expect(screen.getByTestId("job-status")).toHaveTextContent("done");
    expect(screen.getByRole("button", { name: "Export PEFT adapter" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Cancel" })).toBeNull();
    await waitFor(() => expect(within(screen.getAllByTestId("candidate-row")[0]).getByText("yes")).toBeInTheDocument());

    fireEvent.click(screen.getByRole("button", { name: "Make patch from candidate 1" }));
    expect(await screen.findByTestId("made-patches")).toHaveTextContent("Candidate 1 is now 1 patch (p_10)");
    expect(within(screen.getByTestId("made-patches")).getByRole("link", { name: "open the Patch console" })).toHaveAttribute("href", "/patches");
    expect(calls.find((c) => c.url.pathname.endsWith("/candidates/1/patch"))!.body).toEqual({ enabled: true });

    fireEvent.click(screen.getByRole("button", { name: "Export PEFT adapter" }));
    await waitFor(() => expect(saved).toEqual(["bh_1-peft.zip"]));
    click.mockRestore();
    Object.assign(urlStatics, urlSaved);
  });

  it("shows the server's detail when a start is refused and cancels, resumes and reopens jobs", async () => {
    let st: S["BehaviourJobSummary"]["status"] = "running";
    const other = { ...summary("failed", 2), id: "bh_0", name: "old", error: "another model was loaded during the search; load the job's model and resume" };
    const { calls } = stubFetch({
      "GET /api/model": () => [200, { status: "ready", model_id: "tiny", n_layers: 2 }],
      "GET /api/saes": () => [200, []],
      "GET /api/behaviours": () => [200, [summary(st, 1), other]],
      "POST /api/behaviours/remove": () => [409, { detail: "a behaviour-removal job is running (bh_1); cancel it or wait" }],
      "GET /api/behaviours/bh_1": () => [200, detail(st, 1)],
      "GET /api/behaviours/bh_1/candidates": () => [200, [wire(CANDS[0], true)]],
      "POST /api/behaviours/bh_1/cancel": () => {
        st = "cancelled";
        return [202, { job_id: "bh_1", status: "cancelling" }];
      },
      "POST /api/behaviours/bh_1/resume": () => {
        st = "queued";
        return [202, { job_id: "bh_1", status: "queued" }];
      },
      "GET /api/behaviours/bh_0": () => [200, { ...detail("failed", 2), ...other }],
      "GET /api/behaviours/bh_0/candidates": () => [200, []],
      "POST /api/behaviours/bh_0/resume": () => [409, { detail: "load model tiny first" }],
    });
    const { ws } = renderPage(<BehaviourPage />, { path: "/behaviour", route: "/behaviour" });
    act(() => ws().serverOpen());

    // the newest job opens by default
    expect(await screen.findByTestId("behaviour-job")).toHaveAttribute("data-status", "running");
    fireEvent.click(screen.getByRole("radio", { name: /Tokens/ }));
    fireEvent.change(screen.getByLabelText(/Target tokens/), { target: { value: " purple\n1234\n" } });
    fireEvent.change(screen.getByLabelText(/Positive prompts/), { target: { value: "a\nb" } });
    fireEvent.change(screen.getByLabelText(/Negative prompts/), { target: { value: "c\nd" } });
    fireEvent.click(screen.getByRole("button", { name: "Start" }));
    expect(await screen.findByText("a behaviour-removal job is running (bh_1); cancel it or wait")).toBeInTheDocument();
    const post = calls.find((c) => c.url.pathname === "/api/behaviours/remove")!.body as Record<string, unknown>;
    expect(post.target_tokens).toEqual([" purple", 1234]);
    expect(post).not.toHaveProperty("target_text");

    fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(screen.getByTestId("behaviour-job")).toHaveAttribute("data-status", "cancelled"));
    fireEvent.click(screen.getByRole("button", { name: "Resume" }));
    await waitFor(() => expect(calls.some((c) => c.url.pathname === "/api/behaviours/bh_1/resume")).toBe(true));

    // reopen the failed job: its error, and a refused resume shows the server's reason
    fireEvent.click(screen.getByRole("button", { name: "Open job old" }));
    expect(await screen.findByText(/The job failed: another model was loaded/)).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "Resume" }));
    expect(await screen.findByText("load model tiny first")).toBeInTheDocument();
  });

  it("loads prompts from .txt and .jsonl files and names a bad jsonl line", async () => {
    stubFetch({
      "GET /api/model": () => [200, { status: "ready", model_id: "tiny" }],
      "GET /api/saes": () => [200, []],
      "GET /api/behaviours": () => [200, []],
    });
    renderPage(<BehaviourPage />, { path: "/behaviour", route: "/behaviour" });
    const txt = new File(["one\r\ntwo \n\nthree\n"], "pos.txt", { type: "text/plain" });
    fireEvent.change(await screen.findByLabelText(/load a .txt/, { selector: "#bh-positive-file" }), { target: { files: [txt] } });
    await waitFor(() => expect(screen.getByLabelText(/Positive prompts/)).toHaveValue("one\ntwo \nthree"));
    const jsonl = new File(['"x"\n{"text": "multi\\nline"}\n{"prompt": "z"}\n'], "neg.jsonl");
    fireEvent.change(screen.getByLabelText(/load a .txt/, { selector: "#bh-negative-file" }), { target: { files: [jsonl] } });
    await waitFor(() => expect(screen.getByTestId("bh-negative-count")).toHaveTextContent("3 prompts"));
    expect(screen.getByTestId("bh-negative-count")).toHaveTextContent("as loaded from the file");
    const bad = new File(['"x"\n{"id": 3}\n'], "bad.jsonl");
    fireEvent.change(screen.getByLabelText(/load a .txt/, { selector: "#bh-negative-file" }), { target: { files: [bad] } });
    expect(await screen.findByText(/bad.jsonl: line 2 is neither a string nor an object/)).toBeInTheDocument();
  });
});

describe("behaviour request helpers", () => {
  it("keep the slider and number bounds equal to the server's schema", () => {
    const doc = JSON.parse(readFileSync(resolve(import.meta.dirname, "../../../openapi.json"), "utf8"));
    const schemas = doc.components.schemas;
    for (const [key, spec] of Object.entries(BOUNDS) as [string, NumberSpec][]) {
      const [model, field] = key.startsWith("budget.") ? ["BudgetIn", key.slice(7)] : ["RemoveBehaviourRequest", key];
      const p = schemas[model].properties[field];
      expect([key, p.type === "integer"]).toEqual([key, spec.integer]);
      expect([key, p.minimum ?? p.exclusiveMinimum]).toEqual([key, spec.min]);
      expect([key, p.exclusiveMinimum !== undefined]).toEqual([key, !!spec.exclusiveMin]);
      expect([key, p.maximum ?? p.exclusiveMaximum]).toEqual([key, spec.max]);
      expect([key, p.exclusiveMaximum !== undefined]).toEqual([key, !!spec.exclusiveMax]);
      // the slider's ends are values the server takes, and it round-trips its own positions
      expect(outOfBounds(spec, fromSlider(spec, 0))).toBeNull();
      expect(outOfBounds(spec, fromSlider(spec, 1000))).toBeNull();
    }
    expect(fromSlider(BOUNDS.max_evaluations, toSlider(BOUNDS.max_evaluations, 150))).toBeGreaterThan(140);
    expect(fromSlider(BOUNDS.max_evaluations, toSlider(BOUNDS.max_evaluations, 150))).toBeLessThan(160);
  });

  it("parse prompt lines, JSON Lines and target tokens", () => {
    expect(promptLines(" a \r\n\n b")).toEqual([" a ", " b"]);
    expect(parseJsonl('"a"\n\n{"text":"b"}\n{"prompt":"c"}')).toEqual(["a", "b", "c"]);
    expect(() => parseJsonl("nope")).toThrow("line 1 is not JSON");
    expect(parseTargetTokens(" purple\n 12 \nPurple")).toEqual([" purple", 12, "Purple"]);
  });
});
