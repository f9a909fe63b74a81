import { fireEvent, screen, waitFor } from "@testing-library/react";
import { ContrastPage } from "./ContrastPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";

afterEach(() => vi.unstubAllGlobals());

describe("ContrastPage", () => {
  it("contrasts two sets, creates a group patch from the selection, and checks its effect", async () => {
    const { calls } = stubFetch({
      "GET /api/saes": () => [200, [{ sae_id: "s1", model_name: "m", hook_name: "h", layer: 0, d_in: 8, d_sae: 64, architecture: "topk" }]],
      "POST /api/saes/s1/contrast": () => [200, { features: [
        { index: 3, label: "trigger", top_tokens: ["x"], mean_diff: 2, effect_size: 3, positive_rate: 1, negative_rate: 0 },
        { index: 8, label: "other", top_tokens: ["y"], mean_diff: -1, effect_size: -1, positive_rate: 0.2, negative_rate: 0.6 },
      ] }],
      "POST /api/patches": (_u, init) => [200, { id: "p9", ...JSON.parse(String(init.body)) }],
      "POST /api/patches/p9/evaluate": (_u, init) => {
        const texts = JSON.parse(String(init.body)).texts as string[];
        const pos = texts[0].startsWith("bad");
        return [200, { results: texts.map((text) => ({ text, before: 0.5, after: pos ? 0.05 : 0.5 })), mean_before: 0.5, mean_after: pos ? 0.05 : 0.5 }];
      },
    });
    renderPage(<ContrastPage />, { path: "/contrast", route: "/contrast?sae=s1" });
    await screen.findByRole("option", { name: /s1/ });
    fireEvent.change(screen.getByLabelText(/^Positive set/), { target: { value: "bad one\nbad two" } });
    fireEvent.change(screen.getByLabelText(/^Negative set/), { target: { value: "good one" } });
    fireEvent.click(screen.getByRole("button", { name: "Contrast" }));
    expect(await screen.findAllByTestId("contrast-row")).toHaveLength(2);
    expect(calls.find((c) => c.url.pathname.endsWith("/contrast"))!.body).toEqual({
      positive: ["bad one", "bad two"], negative: ["good one"], position: "max", top_n: 20,
    });
    fireEvent.click(screen.getByLabelText("Select feature 3"));
    fireEvent.click(screen.getByRole("button", { name: /Create patch from selection \(1\)/ }));
    await screen.findByText(/Effect check/);
    expect(calls.find((c) => c.url.pathname === "/api/patches")!.body).toMatchObject({ sae_id: "s1", features: [3], mode: "ablate" });
    fireEvent.change(screen.getByLabelText(/Target tokens/), { target: { value: "\\sYes" } });
    fireEvent.click(screen.getByRole("button", { name: "Evaluate" }));
    await waitFor(() => expect(screen.getByTestId("effect-positive")).toHaveTextContent("0.05"));
    expect(screen.getByTestId("effect-negative")).toHaveTextContent("0.5");
    expect(calls.find((c) => c.url.pathname.endsWith("/evaluate"))!.body).toMatchObject({ target_tokens: [" Yes"] });
  });
});
