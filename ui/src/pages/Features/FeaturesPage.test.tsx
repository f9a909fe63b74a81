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
    "GET /api/saes": () => [200, [{ sae_id: "s1", model_name: "m", hook_name: "blocks.0.hook_resid_post", layer: 0, d_in: 16, d_sae: 1500, architecture: "topk" }]],
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
    expect(calls.filter((c) => c.url.pathname.endsWith("/features")).map((c) => c.url.searchParams.get("offset"))).toEqual(["0", "1000"]);
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

  it("clicking a header sorts on the server", async () => {
    const { calls } = setup();
    await waitFor(() => expect(screen.getAllByTestId("feature-row").length).toBeGreaterThan(0));
    fireEvent.click(screen.getByRole("button", { name: /Density/ }));
    await waitFor(() => expect(calls.some((c) => c.url.searchParams.get("sort") === "-density")).toBe(true));
  });
});
