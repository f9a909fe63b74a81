import { fireEvent, screen, waitFor } from "@testing-library/react";
import { ContrastPage } from "./ContrastPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { ContrastResponse, Patch, SaeInfo } from "../../api/types";

const sae: SaeInfo = {
  id: "s1", name: "s1", model_id: "m", hook_name: "blocks.0.hook_resid_post", layer: 0, d_in: 8, d_sae: 64,
  architecture: "topk", created_at: 1, source: "trained",
};
const contrast: ContrastResponse = {
  sae_id: "s1", hook_name: sae.hook_name, n_positive: 2, n_negative: 1,
  features: [
    { index: 3, label: "trigger", top_tokens: ["x"], mean_diff: 2, effect_size: 3, positive_rate: 1, negative_rate: 0,
      mean_positive: 2, mean_negative: 0 },
    { index: 8, label: null, top_tokens: ["y"], mean_diff: -1, effect_size: -1, positive_rate: 0.2, negative_rate: 0.6,
      mean_positive: 0.1, mean_negative: 1.1 },
  ],
};
const patchOf = (body: { features: number[]; mode: Patch["mode"]; strength: number; name: string }): Patch => ({
  id: "p9", sae_id: "s1", enabled: false, applied: true, created_at: 1, updated_at: 1, exportable_as_peft: true,
  hook_name: sae.hook_name, model_id: "m", rank: body.features.length, target_modules: [], origin: "contrast",
  absolute_strength: body.strength, ...body,
});

afterEach(() => vi.unstubAllGlobals());

describe("ContrastPage", () => {
  it("contrasts two sets, creates a group patch from the selection, and checks its effect on both", async () => {
    const { calls } = stubFetch({
      "GET /api/saes": () => [200, [sae]],
      "POST /api/saes/s1/contrast": () => [200, contrast],
      "POST /api/saes/s1/contrast/patch": (_u, init) => [201, patchOf(JSON.parse(String(init.body)))],
      "POST /api/patches/p9/evaluate": (_u, init) => {
        const texts = JSON.parse(String(init.body)).texts as string[];
        const pos = texts[0].startsWith("bad");
        return [200, {
          patch_id: "p9", target_ids: [42], notes: [],
          results: texts.map((text) => ({ text, before: 0.5, after: pos ? 0.05 : 0.5 })),
          mean_before: 0.5, mean_after: pos ? 0.05 : 0.5,
        }];
      },
    });
    renderPage(<ContrastPage />, { path: "/contrast", route: "/contrast?sae=s1" });
    await screen.findByRole("option", { name: /s1/ });
    fireEvent.change(screen.getByLabelText(/^Positive set/), { target: { value: "bad one\nbad two\n\n" } });
    fireEvent.change(screen.getByLabelText(/^Negative set/), { target: { value: "good one" } });
    fireEvent.click(screen.getByRole("button", { name: "Contrast" }));
    const rows = await screen.findAllByTestId("contrast-row");
    expect(rows).toHaveLength(2);
    expect(rows[1]).toHaveTextContent("unlabelled");
    expect(calls.find((c) => c.url.pathname.endsWith("/contrast"))!.body).toEqual({
      positive: ["bad one", "bad two"], negative: ["good one"], position: "max", top_n: 20,
    });
    // one bar per feature, diverging from zero
    expect(rows[0].querySelector(".bar-pos")).toBeTruthy();
    expect(rows[1].querySelector(".bar-neg")).toBeTruthy();

    expect(screen.getByRole("button", { name: /Create patch from selection \(0\)/ })).toBeDisabled();
    fireEvent.click(screen.getByLabelText("Select feature 3"));
    fireEvent.change(screen.getByLabelText("Mode"), { target: { value: "scale" } });
    fireEvent.change(screen.getByLabelText("Strength"), { target: { value: "0.25" } });
    fireEvent.click(screen.getByRole("button", { name: /Create patch from selection \(1\)/ }));
    await screen.findByText(/Effect check/);
    // created switched off: the page says so and points at the Patch console
    expect(screen.getByTestId("contrast-patch-note")).toHaveTextContent(/switched off/);
    expect(calls.find((c) => c.url.pathname === "/api/saes/s1/contrast/patch")!.body).toEqual({
      features: [3], mode: "scale", strength: 0.25, name: "contrast scale ×1",
    });

    fireEvent.change(screen.getByLabelText(/Target tokens/), { target: { value: "\\sYes, No, \\n" } });
    fireEvent.click(screen.getByRole("button", { name: "Evaluate" }));
    await waitFor(() => expect(screen.getByTestId("effect-positive")).toHaveTextContent("0.05"));
    expect(screen.getByTestId("effect-negative")).toHaveTextContent("0.5");
    const evals = calls.filter((c) => c.url.pathname.endsWith("/evaluate")).map((c) => c.body);
    // escapes are read: \s a space, \n a newline (never a literal backslash)
    expect(evals).toContainEqual({ texts: ["bad one", "bad two"], target_tokens: [" Yes", "No", "\n"] });
    expect(evals).toContainEqual({ texts: ["good one"], target_tokens: [" Yes", "No", "\n"] });
  });

  it("reads a set from an uploaded .txt file, one prompt per line", async () => {
    stubFetch({ "GET /api/saes": () => [200, [sae]] });
    renderPage(<ContrastPage />, { path: "/contrast", route: "/contrast?sae=s1" });
    const file = new File(["first prompt\nsecond prompt\n"], "pos.txt", { type: "text/plain" });
    fireEvent.change(screen.getByLabelText(/load a \.txt file/, { selector: "#pos-set-file" }), { target: { files: [file] } });
    await waitFor(() => expect(screen.getByLabelText(/^Positive set/)).toHaveValue("first prompt\nsecond prompt\n"));
  });
});
