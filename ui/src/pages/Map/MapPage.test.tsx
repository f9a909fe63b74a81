import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import { Route, Routes } from "react-router";
import { MapPage } from "./MapPage";
import { clusterColor, makeScales } from "./geometry";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { FeatureMapData } from "../../api/types";

// 3 clusters of 40, 25 and 10 points on separate rings
const sizes = [40, 25, 10];
const cluster = sizes.flatMap((n, c) => Array.from({ length: n }, () => c));
const points: FeatureMapData["points"] = {
  index: cluster.map((_, i) => i),
  x: cluster.map((c, i) => c * 10 + Math.cos(i) * 2),
  y: cluster.map((c, i) => Math.sin(i) * 2 + c),
  cluster,
  label: cluster.map((c, i) => (i === 7 ? "golden retriever" : `label ${c}-${i}`)),
  density: cluster.map(() => 0.01),
};
const MAP: FeatureMapData = {
  sae_id: "s1",
  params: { seed: 0 },
  points,
  clusters: sizes.map((size, id) => ({ id, size, top_labels: [`label ${id}`] })),
};
const SAE = { id: "s1", name: "s1", model_id: "m", hook_name: "blocks.0.hook_resid_post", layer: 0, d_in: 16, d_sae: 75, architecture: "topk", created_at: 1, source: "trained" };

/** A canvas 2-D context that records each fillRect with the fillStyle and alpha it was drawn with. */
function recordCanvas() {
  const rects: { style: string; alpha: number; w: number }[] = [];
  const ctx = {
    fillStyle: "", strokeStyle: "", lineWidth: 1, globalAlpha: 1,
    setTransform() {}, clearRect() { rects.length = 0; }, strokeRect() {},
    fillRect(_x: number, _y: number, w: number) { rects.push({ style: String(this.fillStyle), alpha: this.globalAlpha, w }); },
  };
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation((() => ctx) as never);
  return rects;
}

const mapJob = (status: string) => ({ id: "j1", sae_id: "s1", kind: "map", status, done: 0, total: 2, error: null, config: {}, created_at: 1, updated_at: 1 });

function setup(mapStatus = 200, job: ReturnType<typeof mapJob> | null = null) {
  const server = { mapStatus, job };
  const stub = stubFetch({
    "GET /api/saes": () => [200, [SAE]],
    "GET /api/saes/s1/map": () => (server.mapStatus === 200 ? [200, MAP] : [404, { detail: "SAE s1 has no feature map yet; POST /api/saes/s1/map to compute one" }]),
    "GET /api/saes/s1/map/job": () => [200, server.job],
    "POST /api/saes/s1/map/cancel": () => [202, server.job],
    "POST /api/saes/s1/map": () => [202, { id: "j1", sae_id: "s1", kind: "map", status: "running", done: 0, total: 2, error: null, config: {}, created_at: 1, updated_at: 1 }],
  });
  const r = renderPage(
    <Routes>
      <Route path="/map/:saeId" element={<MapPage />} />
      <Route path="/features/:saeId/:index" element={<p data-testid="feature-page">feature page</p>} />
    </Routes>,
    { path: "*", route: "/map/s1" },
  );
  return { ...stub, ...r, server };
}

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

const countBy = (rects: { style: string }[]) =>
  rects.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.style]: (acc[r.style] ?? 0) + 1 }), {});

describe("MapPage", () => {
  it("draws every point in its cluster's colour, lists clusters with sizes, hides a cluster on request", async () => {
    const rects = recordCanvas();
    setup();
    await waitFor(() => expect(screen.getByTestId("map-count")).toHaveTextContent("75 features · 3 clusters"));
    await waitFor(() => expect(rects.length).toBe(75));
    expect(countBy(rects)).toEqual({ [clusterColor(0)]: 40, [clusterColor(1)]: 25, [clusterColor(2)]: 10 });
    const items = screen.getAllByTestId("map-cluster");
    expect(items.map((li) => li.textContent)).toEqual(["0 · 40 · label 0", "1 · 25 · label 1", "2 · 10 · label 2"]);
    fireEvent.click(screen.getByLabelText("Cluster 1"));
    await waitFor(() => expect(countBy(rects)).toEqual({ [clusterColor(0)]: 40, [clusterColor(2)]: 10 }));
  });

  it("search highlights the matching labels", async () => {
    const rects = recordCanvas();
    setup();
    await screen.findByTestId("map-canvas");
    fireEvent.change(screen.getByLabelText("Highlight labels"), { target: { value: "golden" } });
    await waitFor(() => expect(screen.getByTestId("map-count")).toHaveTextContent("1 match"));
    const big = rects.filter((r) => r.alpha === 1);
    expect(big).toHaveLength(1);
    expect(big[0].style).toBe(clusterColor(0));
    expect(rects.filter((r) => r.alpha < 1)).toHaveLength(74);
  });

  it("hover shows the label, click opens the feature page", async () => {
    recordCanvas();
    setup();
    const canvas = await screen.findByTestId("map-canvas");
    const s = makeScales(points, 880, 600); // the canvas' default size; jsdom puts it at (0, 0)
    const at = { clientX: s.x(points.x[7]), clientY: s.y(points.y[7]) };
    fireEvent.mouseMove(canvas, at);
    expect(await screen.findByTestId("map-tooltip")).toHaveTextContent("#7 golden retriever");
    fireEvent.click(canvas, at);
    expect(await screen.findByTestId("feature-page")).toBeInTheDocument();
  });

  it("before a map exists says so, starts the job and shows the map when the job ends", async () => {
    const rects = recordCanvas();
    const { calls, ws, server } = setup(404);
    act(() => ws().serverOpen());
    expect(await screen.findByTestId("map-absent")).toHaveTextContent("POST /api/saes/s1/map");
    fireEvent.change(screen.getByLabelText("Clusters"), { target: { value: "12" } });
    fireEvent.click(screen.getByRole("button", { name: "Compute map" }));
    await waitFor(() => expect(screen.getByTestId("map-job")).toHaveAttribute("data-status", "running"));
    const post = calls.find((c) => c.method === "POST");
    expect(post?.body).toMatchObject({ n_clusters: 12, seed: 0, n_neighbors: 15 });
    server.mapStatus = 200;
    act(() => ws().serverSend({ type: "job", job_id: "j1", kind: "map", status: "done", done: 2, total: 2, detail: null }));
    await waitFor(() => expect(rects.length).toBe(75));
    expect(screen.queryByTestId("map-absent")).toBeNull();
  });

  it("cancels a running map job; without an earlier map it says none was saved", async () => {
    recordCanvas();
    const { calls, ws, server } = setup(404, mapJob("running"));
    act(() => ws().serverOpen());
    await waitFor(() => expect(screen.getByTestId("map-job")).toHaveAttribute("data-status", "running"));
    fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "POST" && c.url.pathname === "/api/saes/s1/map/cancel")).toHaveLength(1));
    server.job = mapJob("cancelled");
    act(() => ws().serverSend({ type: "job", job_id: "j1", kind: "map", status: "cancelled", done: 0, total: 2, detail: null }));
    await waitFor(() => expect(screen.getByTestId("map-job")).toHaveAttribute("data-status", "cancelled"));
    expect(screen.getByTestId("map-cancelled")).toHaveTextContent("no map was saved");
    expect(screen.queryByRole("button", { name: "Cancel" })).toBeNull();
    expect(screen.getByRole("button", { name: "Compute map" })).toBeInTheDocument();
  });
});

