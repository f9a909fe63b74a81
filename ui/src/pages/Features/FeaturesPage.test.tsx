import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import { FeaturesPage } from "./FeaturesPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { FeatureSummary } from "../../api/types";

const features: FeatureSummary[] = Array.from({ length: 1500 }, (_, i) => ({
  index: i, label: `feature ${i}`, density: (i % 10) / 10, max_activation: i, top_tokens: ["a"], starred: i === 3,
}));

function setup() {
  const stub = stubFetch({
    "GET /api/saes": () => [200, [{ id: "s1", name: "s1", model_id: "m", hook_name: "blocks.0.hook_resid_post", layer: 0, d_in: 16, d_sae: 1500, architecture: "topk", created_at: 1, source: "trained" }]],
    "POST /api/saes/import": () => [201, { id: "s2", name: "imported", model_id: "m", hook_name: "blocks.0.hook_resid_post", layer: 0, d_in: 16, d_sae: 32, architecture: "topk", created_at: 2, source: "imported" }],
    "GET /api/saes/s2/analysis": () => [200, { sae_id: "s2", status: "none" }],
    "GET /api/saes/s1/analysis": () => [200, { sae_id: "s1", status: "done", n_tokens: 1000 }],
    "POST /api/saes/s1/analysis": () => [202, { sae_id: "s1", status: "running", progress: { phase: "starting", done: 0, total: 0 } }],
    "GET /api/saes/s1/features": (u) => {
      const off = Number(u.searchParams.get("offset"));
      const lim = Number(u.searchParams.get("limit"));
      return [200, { items: features.slice(off, off + lim), total: features.length, offset: off, limit: lim }];
    },
  });
  const r = renderPage(<FeaturesPage />, { path: "/features/:saeId", route: "/features/s1" });
  return { ...stub, ...r };
}

afterEach(() => vi.unstubAllGlobals());

describe("FeaturesPage", () => {
  it("loads every page, renders only a window of rows", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("1,500 shown of 1,500"));
    expect(calls.filter((c) => c.url.pathname.endsWith("/features")).map((c) => c.url.searchParams.get("offset"))).toEqual(["0", "500", "1000"]);
    const rows = screen.getAllByTestId("feature-row");
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(60);
  });

  it("j/k move the selection, / focuses search, filters apply", async () => {
    setup();
    await waitFor(() => expect(screen.getByTestId("feature-count")).toHaveTextContent("1,500 shown of 1,500"));
    act(() => {
      fireEvent.keyDown(window, { key: "j" });
      fireEvent.keyDown(window, { key: "j" });
      fireEvent.keyDown(window, { key: "k" });
    });
    expect(screen.getAllByTestId("feature-row")[1]).toHaveAttribute("aria-selected", "true");
    fireEvent.keyDown(window, { key: "/" });
    expect(screen.getByLabelText(/Search/)).toHaveFocus();
    fireEvent.click(screen.getByLabelText("Starred only"));
    await waitFor(() => expect(screen.getAllByTestId("feature-row")).toHaveLength(1));
  });

  it("shows the analysis status, starts a re-run and follows its progress over the socket", async () => {
    const { calls, ws } = setup();
    act(() => ws().serverOpen());
    expect(await screen.findByTestId("analysis-status")).toHaveTextContent("done");
    fireEvent.click(screen.getByRole("button", { name: "Re-run analysis" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.url.pathname.endsWith("/analysis"))).toBe(true));
    act(() => ws().serverSend({ type: "analysis_progress", sae_id: "s1", phase: "activations", done: 30, total: 120 }));
    expect(screen.getByRole("progressbar", { name: "Feature analysis progress" })).toHaveAttribute("aria-valuenow", "25");
    const before = calls.filter((c) => c.url.pathname.endsWith("/features")).length;
    act(() => ws().serverSend({ type: "analysis_done", sae_id: "s1", status: "done" }));
    await waitFor(() => expect(calls.filter((c) => c.url.pathname.endsWith("/features")).length).toBeGreaterThan(before));
  });

  it("imports an SAE zip and opens it", async () => {
    const { calls } = setup();
    const file = new File([new Uint8Array([80, 75, 3, 4])], "sae.zip", { type: "application/zip" });
    fireEvent.change(screen.getByLabelText("Import SAE (.zip)"), { target: { files: [file] } });
    fireEvent.click(screen.getByRole("button", { name: "Import" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.url.pathname === "/api/saes/import")).toBe(true));
    // the picker reloads and the page moves to the imported SAE
    await waitFor(() => expect(calls.some((c) => c.url.pathname === "/api/saes/s2/analysis")).toBe(true));
    expect(calls.filter((c) => c.method === "GET" && c.url.pathname === "/api/saes").length).toBeGreaterThan(1);
  });

  it("clicking a header sorts on the server", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getAllByTestId("feature-row").length).toBeGreaterThan(0));
    fireEvent.click(screen.getByRole("button", { name: /Density/ }));
    await waitFor(() => expect(calls.some((c) => c.url.searchParams.get("sort") === "-density")).toBe(true));
  });

  it("asks for the most consistent features first with whitespace features hidden, and shows whitespace tokens as marks", async () => {
    features[0] = { ...features[0], top_tokens: [" ", "\n", " return", " <0xE2><0x80><0x9C>"], consistency: 0.5 };
    const { calls } = setup();
    await waitFor(() => expect(screen.getAllByTestId("feature-row").length).toBeGreaterThan(0));
    const first = calls.find((c) => c.url.pathname.endsWith("/features"))!;
    expect(first.url.searchParams.get("sort")).toBe("-consistency");
    expect(first.url.searchParams.get("hide_degenerate")).toBe("true");
    expect(screen.getByRole("columnheader", { name: /Consistency/ })).toHaveAttribute("aria-sort", "descending");
    const chips = screen.getAllByTestId("feature-row")[0].querySelectorAll("[data-testid=token-chip]");
    expect([...chips].map((c) => c.textContent)).toEqual(["␣", "↵", "·return", "·“"]);
    fireEvent.click(screen.getByLabelText("Hide whitespace features"));
    await waitFor(() => expect(calls.some((c) => c.url.pathname.endsWith("/features") && !c.url.searchParams.has("hide_degenerate"))).toBe(true));
  });
});
