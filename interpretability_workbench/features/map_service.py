"""FeatureMapService: compute an SAE's feature map (``features.map``) in a background job and serve it with
each feature's label and density and a summary of each cluster.

The map is cached in the SAE's folder (``save_feature_map``); a cached map whose decoder fingerprint no longer
matches the SAE is treated as absent. Progress is published as ``job`` events with kind ``map``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..background import BackgroundJobs, Report
from ..errors import Conflict, Invalid, NotFound
from ..events import Publish
from ..sae.registry import SAERegistry
from ..store.features import FeatureLabel, FeatureRepo
from ..store.jobs import JobRecord, JobRepo
from .map import MAP_TENSORS_NAME, FeatureMap, FeatureMapParams, feature_map, load_feature_map, save_feature_map

KIND = "map"
TOP_LABELS = 5
"""Labels listed per cluster."""


@dataclass
class MapRequest:
    """Parameters of ``features.map.feature_map`` (None picks the size-dependent default)."""

    seed: int = 0
    """Random state of UMAP and k-means."""
    n_neighbors: int = 15
    """UMAP neighbourhood size."""
    min_dist: float = 0.1
    """UMAP minimum distance between points."""
    n_clusters: int | None = None
    """k-means clusters on the layout."""
    n_epochs: int | None = None
    """UMAP SGD epochs."""
    init: str | None = None
    """spectral, pca or random."""
    pca_dims: int | None = None
    """Pre-reduce the unit decoder rows to this many dimensions."""

    def __post_init__(self) -> None:
        # the map's own parameter checks (422 with what to change)
        FeatureMapParams(seed=self.seed, n_neighbors=self.n_neighbors, min_dist=self.min_dist,
                         n_epochs=self.n_epochs, init=self.init, pca_dims=self.pca_dims, n_clusters=self.n_clusters)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MapPoints(NamedTuple):
    """Columns, one entry per feature (index order)."""

    index: list[int]
    x: list[float]
    y: list[float]
    cluster: list[int]
    label: list[str | None]
    density: list[float | None]


class ClusterSummary(NamedTuple):
    id: int
    size: int
    top_labels: list[str]
    """The most frequent labels of the cluster (ties: the feature with the highest density first)."""


class MapView(NamedTuple):
    sae_id: str
    params: FeatureMapParams
    points: MapPoints
    clusters: list[ClusterSummary]


def cluster_summaries(cluster: list[int], label: list[str | None], density: list[float | None],
                      top: int = TOP_LABELS) -> list[ClusterSummary]:
    """Size and most frequent labels of each cluster id 0..max(cluster)."""
    n = max(cluster) + 1 if cluster else 0
    counts: list[Counter[str]] = [Counter() for _ in range(n)]
    best: list[dict[str, float]] = [{} for _ in range(n)]
    sizes = [0] * n
    for c, lab, d in zip(cluster, label, density):
        sizes[c] += 1
        if lab:
            counts[c][lab] += 1
            best[c][lab] = max(best[c].get(lab, -1.0), d if d is not None else -1.0)
    return [ClusterSummary(c, sizes[c], sorted(counts[c], key=lambda s: (-counts[c][s], -best[c][s], s))[:top])
            for c in range(n)]


class FeatureMapService:
    def __init__(self, saes: SAERegistry, features: FeatureRepo, jobs: JobRepo, publish: Publish) -> None:
        self.saes, self.features = saes, features
        self._checked: dict[str, tuple[tuple[int, int, int], FeatureMap]] = {}
        """sae_id -> ((id of W_dec, its in-place version, map file mtime), the map checked against it): a second
        GET skips reading and fingerprinting the decoder again."""
        self.jobs = BackgroundJobs(jobs, KIND, publish, noun="feature map")

    def _folder(self, sae_id: str) -> Path:
        return Path(self.saes.row(sae_id).path)

    # queries --------------------------------------------------------------------------------
    def job(self, sae_id: str) -> JobRecord | None:
        self.saes.row(sae_id)
        return self.jobs.latest(sae_id)

    def cached(self, sae_id: str) -> FeatureMap:
        """The stored map of the SAE's current decoder; 409 while one is computed, 404 before."""
        if self.jobs.running(sae_id):
            raise Conflict(f"the feature map of SAE {sae_id} is being computed; wait for the job to finish")
        W = self.saes.get(sae_id).sae.W_dec  # [d_sae d_in]
        folder = self._folder(sae_id)
        try:
            key = (id(W), W._version, (folder / MAP_TENSORS_NAME).stat().st_mtime_ns)
        except OSError:
            key = None
        hit = self._checked.get(sae_id)
        if key is not None and hit is not None and hit[0] == key:
            return hit[1]
        try:
            fmap = load_feature_map(folder)
        except NotFound:
            raise NotFound(f"SAE {sae_id} has no feature map yet; POST /api/saes/{sae_id}/map to compute one "
                           "(microscope map SAE_ID)") from None
        if not fmap.matches(W):
            raise NotFound(f"the stored feature map of SAE {sae_id} belongs to other decoder weights; "
                           f"POST /api/saes/{sae_id}/map to recompute it")
        if key is not None:
            self._checked[sae_id] = (key, fmap)
        return fmap

    def view(self, sae_id: str) -> MapView:
        fmap = self.cached(sae_id)
        n = fmap.xy.shape[0]
        labels: dict[int, FeatureLabel] = self.features.labels(sae_id)
        dens = self.features.densities(sae_id)
        xy = fmap.xy.tolist()
        lab = [labels[i].label if i in labels else None for i in range(n)]
        den = [dens.get(i) for i in range(n)]
        cl = fmap.cluster.tolist()
        pts = MapPoints(list(range(n)), [p[0] for p in xy], [p[1] for p in xy], cl, lab, den)
        return MapView(sae_id, fmap.params, pts, cluster_summaries(cl, lab, den))

    # commands ---------------------------------------------------------------------------------
    def start(self, sae_id: str, req: MapRequest) -> JobRecord:
        """Compute and cache the map in a worker thread; 409 while one runs for this SAE."""
        folder = self._folder(sae_id)
        sae = self.saes.get(sae_id).sae
        if sae.cfg.d_sae <= req.n_neighbors:
            raise Invalid(f"SAE {sae_id} has {sae.cfg.d_sae} features, not more than n_neighbors "
                          f"({req.n_neighbors}); lower n_neighbors")

        def work(report: Report) -> str:
            report(0, 2, f"normalising {sae.cfg.d_sae} decoder directions")
            fmap = feature_map(sae.W_dec.detach().cpu(), **req.to_dict(), progress=lambda msg: report(0, 2, msg))
            report(1, 2, "saving the map")  # the last point where a cancel stops the job
            save_feature_map(fmap, folder)
            return f"{fmap.n_clusters} clusters in {fmap.params.seconds:.1f}s"

        return self.jobs.start(sae_id, req.to_dict(), work)

    def cancel(self, sae_id: str) -> JobRecord:
        """Stop the running map job of ``sae_id`` at its next stage (before it saves); 409 when none runs."""
        self.saes.row(sae_id)
        return self.jobs.cancel(sae_id)

    def wait(self, sae_id: str, timeout: float | None = None) -> None:
        self.jobs.wait(sae_id, timeout)

    def shutdown(self) -> None:
        self.jobs.shutdown()
