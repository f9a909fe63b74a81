import { screen } from "@testing-library/react";
import { ApiError } from "./errors";
import { MAX_RETRIES, shouldRetry } from "./queryClient";
import { FeatureDetailPage } from "../pages/FeatureDetail/FeatureDetailPage";
import { renderPage } from "../test/render";
import { stubFetch } from "../test/fetchStub";
import type { FeatureDetail } from "./types";

const feature: FeatureDetail = {
  index: 7, label: "cat", analysed: false, notes: "", starred: false, density: 0.01, max_activation: 4, top_tokens: [],
  top_contexts: [], quantiles: [], histogram: { edges: [0, 1], counts: [1] },
  top_positive_logits: [], top_negative_logits: [], neighbours: [],
};
const PATH = "/api/saes/s1/features/7";

afterEach(() => vi.unstubAllGlobals());

describe("shouldRetry", () => {
  it("never retries a 4xx, retries network failures and 5xx up to MAX_RETRIES times", () => {
    for (const status of [400, 401, 403, 404, 409, 413, 422, 429]) expect(shouldRetry(0, new ApiError(status, "x"))).toBe(false);
    for (const err of [new ApiError(500, "x"), new ApiError(503, null), new TypeError("Failed to fetch")]) {
      expect(shouldRetry(0, err)).toBe(true);
      expect(shouldRetry(MAX_RETRIES - 1, err)).toBe(true);
      expect(shouldRetry(MAX_RETRIES, err)).toBe(false);
    }
  });
});

describe("query retries through a page", () => {
  it("asks once on a 4xx and shows the server's answer", async () => {
    const { calls } = stubFetch({ [`GET ${PATH}`]: () => [404, { detail: "Feature 7 out of range (d_sae=4)" }] });
    renderPage(<FeatureDetailPage />, { path: "/features/:saeId/:index", route: "/features/s1/7" });
    expect(await screen.findByRole("alert")).toHaveTextContent("Feature 7 out of range");
    // the error shows only once retries are over: had there been one, it would have been asked by now
    expect(calls.filter((c) => c.url.pathname === PATH)).toHaveLength(1);
  });

  it("tries a 5xx again and shows the answer once the server recovers", async () => {
    let n = 0;
    const { calls } = stubFetch({
      [`GET ${PATH}`]: () => (++n <= 2 ? [503, { detail: "busy" }] : [200, feature]),
      "GET /api/provenance/upstream": () => [200, { sae_id: "s1", layer: 0, hook: "resid_post", available: [],
        missing_layers: [], suggested_layers: [], train: { layers: [], hook: "resid_post", d_sae: 64, architecture: "topk", k: 8 } }],
    });
    renderPage(<FeatureDetailPage />, { path: "/features/:saeId/:index", route: "/features/s1/7" });
    expect(await screen.findByRole("heading", { level: 1 })).toHaveTextContent("Feature 7");
    expect(calls.filter((c) => c.url.pathname === PATH)).toHaveLength(3);
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("gives up on an unreachable server after MAX_RETRIES retries and says so", async () => {
    const fn = vi.fn(async () => {
      throw new TypeError("Failed to fetch");
    });
    vi.stubGlobal("fetch", fn);
    renderPage(<FeatureDetailPage />, { path: "/features/:saeId/:index", route: "/features/s1/7" });
    expect(await screen.findByRole("alert")).toHaveTextContent("Cannot reach the server");
    expect(fn).toHaveBeenCalledTimes(1 + MAX_RETRIES);
  });
});
