import { useMemo, useState } from "react";
import { useNavigate, useParams } from "react-router";
import { ApiError, errorText } from "../../api/errors";
import { useCancelUnderstandingJob, useStartMap } from "../../api/mutations";
import { useFeatureMap, useMapJob } from "../../api/queries";
import type { FeatureMapData, UnderstandingJob } from "../../api/types";
import { SaePicker } from "../../components/SaePicker";
import { ErrorMessage, Loading, ProgressBar } from "../../components/Status";
import { MapCanvas } from "./MapCanvas";
import { clusterColor, matchingRows } from "./geometry";

/** The map job of one SAE: its status and progress, and a form to (re)compute the map. */
function MapJobPanel({ saeId, job, hasMap }: { saeId: string; job: UnderstandingJob | null | undefined; hasMap: boolean }) {
  const start = useStartMap(saeId);
  const cancel = useCancelUnderstandingJob(saeId, "map");
  const [seed, setSeed] = useState("0");
  const [clusters, setClusters] = useState("");
  const [neighbors, setNeighbors] = useState("15");
  const [minDist, setMinDist] = useState("0.1");
  const running = job?.status === "running" || job?.status === "queued";
  const run = () =>
    start.mutate({
      seed: Number(seed) || 0,
      n_neighbors: Number(neighbors) || 15,
      min_dist: minDist.trim() === "" ? 0.1 : Number(minDist),
      n_clusters: clusters.trim() ? Number(clusters) : null,
    });
  return (
    <div className="card" data-testid="map-job" data-status={job?.status ?? "none"}>
      <div className="row">
        <strong>Feature map:</strong>{" "}
        <span className={`badge badge-${job?.status ?? "none"}`}>{job?.status ?? (hasMap ? "done" : "not computed")}</span>
        {!running && (
          <>
            <label htmlFor="map-seed" className="small">Seed</label>
            <input id="map-seed" type="number" min={0} value={seed} onChange={(e) => setSeed(e.target.value)} style={{ width: "5em" }} />
            <label htmlFor="map-clusters" className="small">Clusters</label>
            <input id="map-clusters" type="number" min={1} placeholder="auto" value={clusters} onChange={(e) => setClusters(e.target.value)} style={{ width: "5em" }} />
            <label htmlFor="map-nn" className="small">Neighbours</label>
            <input id="map-nn" type="number" min={2} value={neighbors} onChange={(e) => setNeighbors(e.target.value)} style={{ width: "5em" }} />
            <label htmlFor="map-md" className="small">Min distance</label>
            <input id="map-md" type="number" min={0} max={1} step={0.05} value={minDist} onChange={(e) => setMinDist(e.target.value)} style={{ width: "5em" }} />
            <button type="button" onClick={run} disabled={start.isPending}>{hasMap ? "Recompute map" : "Compute map"}</button>
          </>
        )}
        {running && (
          <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending}
            title="Stop at the next stage; a map saved before stays">Cancel</button>
        )}
      </div>
      {running && (
        <>
          <ProgressBar value={job && job.total > 0 ? job.done / job.total : null} label="Feature map progress" />
          <p className="muted small">UMAP of the decoder directions, then k-means on the layout (the first map after a server start also compiles UMAP: a few minutes).</p>
        </>
      )}
      {job?.status === "failed" && job.error && <ErrorMessage error={`Map failed: ${job.error}`} />}
      {job?.status === "cancelled" && <p className="muted small" data-testid="map-cancelled">Cancelled: {hasMap ? "the map shown is the one saved before" : "no map was saved"}.</p>}
      <ErrorMessage error={errorText(start.error ?? cancel.error)} />
    </div>
  );
}

/** Cluster legend: colour, size and top labels per cluster; a checkbox hides or shows each one. */
function Legend({ data, hidden, setHidden }: { data: FeatureMapData; hidden: Set<number>; setHidden: (h: Set<number>) => void }) {
  const toggle = (id: number) => {
    const next = new Set(hidden);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setHidden(next);
  };
  return (
    <div className="map-legend" aria-label="Clusters" style={{ maxHeight: 600, overflowY: "auto", minWidth: 260 }}>
      <div className="row small">
        <button type="button" onClick={() => setHidden(new Set())}>Show all</button>
        <button type="button" onClick={() => setHidden(new Set(data.clusters.map((c) => c.id)))}>Hide all</button>
      </div>
      <ul style={{ listStyle: "none", padding: 0, margin: 0 }}>
        {data.clusters.map((c) => (
          <li key={c.id} data-testid="map-cluster" className="small">
            <label>
              <input type="checkbox" checked={!hidden.has(c.id)} onChange={() => toggle(c.id)} aria-label={`Cluster ${c.id}`} />
              <span style={{ display: "inline-block", width: 10, height: 10, background: clusterColor(c.id), margin: "0 0.3rem" }} />
              <strong>{c.id}</strong> · {c.size.toLocaleString()} · <span className="muted">{c.top_labels.slice(0, 3).join(", ") || "no labels"}</span>
            </label>
          </li>
        ))}
      </ul>
    </div>
  );
}

/**
 * /map/:saeId — every feature of an SAE on a 2-D map of its decoder directions (UMAP, cosine) coloured by
 * k-means cluster. Hover shows a feature's label, a click opens its page; the legend filters clusters and the
 * search box highlights features whose label matches.
 */
export function MapPage() {
  const { saeId } = useParams();
  const nav = useNavigate();
  const job = useMapJob(saeId);
  const map = useFeatureMap(saeId);
  const [hidden, setHidden] = useState<Set<number>>(new Set());
  const [q, setQ] = useState("");
  const data = map.data;
  const matches = useMemo(() => (data ? matchingRows(data.points, q) : null), [data, q]);
  const err = map.error instanceof ApiError ? map.error : null;
  const absent = err?.status === 404 || err?.status === 409;

  return (
    <div className="page map-page">
      <h1>Feature map</h1>
      <SaePicker value={saeId} onChange={(id) => { setHidden(new Set()); nav(`/map/${encodeURIComponent(id)}`); }} />
      {saeId && (
        <>
          <MapJobPanel saeId={saeId} job={job.data} hasMap={!!data} />
          {map.isPending && <Loading what="Loading the map" />}
          {absent && <p className="muted" data-testid="map-absent">{err?.message}</p>}
          {!absent && <ErrorMessage error={errorText(map.error)} onRetry={() => void map.refetch()} />}
          {data && (
            <>
              <div className="toolbar" role="search">
                <div className="field">
                  <label htmlFor="map-search">Highlight labels</label>
                  <input id="map-search" type="search" value={q} onChange={(e) => setQ(e.target.value)} />
                </div>
                <span className="muted small" data-testid="map-count">
                  {data.points.index.length.toLocaleString()} features · {data.clusters.length} clusters
                  {matches && ` · ${matches.size.toLocaleString()} match`}
                </span>
              </div>
              <div className="row" style={{ alignItems: "flex-start", gap: "1rem" }}>
                <MapCanvas data={data} hidden={hidden} matches={matches}
                  onPick={(index) => nav(`/features/${encodeURIComponent(saeId)}/${index}`)} />
                <Legend data={data} hidden={hidden} setHidden={setHidden} />
              </div>
            </>
          )}
        </>
      )}
    </div>
  );
}
