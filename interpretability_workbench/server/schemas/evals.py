"""Wire schemas of /api/saes/{sae_id}/map (feature map jobs and the map) and /api/saes/{sae_id}/evals
(evaluation jobs and their results)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EvalName = Literal["absorption", "sparse_probing", "density"]


class UnderstandingJob(BaseModel):
    id: str = Field(description="Job id.")
    sae_id: str = Field(description="SAE the job works on.")
    kind: Literal["map", "evals"] = Field(description="map: feature map; evals: evaluations.")
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"] = Field(description="Job status.")
    done: int = Field(description="Stages finished.")
    total: int = Field(description="Stages of the job (0 before it starts).")
    error: str | None = Field(None, description="Why the job failed.")
    config: dict = Field(description="The request the job runs.")
    created_at: float = Field(description="Unix seconds.")
    updated_at: float = Field(description="Unix seconds.")


class MapRequestBody(BaseModel):
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random state of UMAP and k-means: the same seed and decoder give the same map.")
    n_neighbors: int = Field(15, ge=2, le=1000, description="UMAP neighbourhood size: larger keeps more global structure.")
    min_dist: float = Field(0.1, ge=0.0, le=1.0, description="UMAP minimum distance between points (0 packs clusters tightly).")
    n_clusters: int | None = Field(None, ge=1, le=10_000, description="k-means clusters on the layout; null: sqrt(d_sae / 2) clipped to 2..256.")
    n_epochs: int | None = Field(None, ge=1, le=10_000, description="UMAP SGD epochs; null: 500 up to 10k features, 200 up to 20k, 100 beyond.")
    init: Literal["spectral", "pca", "random"] | None = Field(None, description="UMAP initial layout; null: spectral up to 20k features, pca beyond.")
    pca_dims: int | None = Field(None, ge=2, le=100_000, description="Project unit decoder rows onto this many top singular vectors first (null: no pre-reduction).")


class MapPoints(BaseModel):
    index: list[int] = Field(description="Feature index of each point.")
    x: list[float] = Field(description="Layout x of each point.")
    y: list[float] = Field(description="Layout y of each point.")
    cluster: list[int] = Field(description="Cluster id of each point (0 = largest cluster).")
    label: list[str | None] = Field(description="Display label of each point (null: not analysed / unlabelled).")
    density: list[float | None] = Field(description="Share of analysed tokens on which the feature fires (null: not analysed).")


class MapCluster(BaseModel):
    id: int = Field(description="Cluster id (0 = largest).")
    size: int = Field(description="Features in the cluster.")
    top_labels: list[str] = Field(description="Most frequent labels in the cluster.")


class FeatureMapOut(BaseModel):
    sae_id: str
    params: dict = Field(description="How the map was made: resolved UMAP/k-means parameters, decoder fingerprint, seconds.")
    points: MapPoints = Field(description="One column per field, one entry per feature.")
    clusters: list[MapCluster]


class EvalRequestBody(BaseModel):
    which: list[EvalName] = Field(default_factory=lambda: ["absorption", "sparse_probing", "density"], min_length=1, description="Evaluations to run.")
    corpus: str | None = Field(None, max_length=200, description="Corpus id for the probing tasks and density tokens; null: the built-in corpus.")
    density_tokens: int = Field(65_536, ge=1, le=10_000_000, description="Tokens the density histogram is measured on.")
    probe_docs: int = Field(400, ge=1, le=100_000, description="Documents read to build the probing tasks.")
    probe_per_class: int = Field(500, ge=4, le=100_000, description="Labelled tokens sampled per class and probing task.")
    ks: list[int] = Field(default_factory=lambda: [1, 2, 5, 10], min_length=1, max_length=16, description="Sizes of the k-sparse probes.")
    absorption_per_letter: int = Field(64, ge=2, le=100_000, description="Words sampled per first letter.")
    absorption_min_probe_f1: float = Field(0.6, ge=0.0, le=1.0, description="Letters whose ground-truth probe F1 is below this are skipped.")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class EvalResultOut(BaseModel):
    sae_id: str
    created_at: float = Field(description="Unix seconds when the evaluation finished.")
    request: dict = Field(description="The request it ran.")
    summary: dict[str, float | None] = Field(description="Headline numbers (null where an evaluation was not run or had nothing to score).")
    result: dict = Field(description="Every evaluation's full result (hook_name, d_sae, absorption, sparse_probing, density).")


class EvalCompareOut(BaseModel):
    rows: list[dict[str, str | int | float | None]] = Field(description="One row per SAE (sae_id, d_sae and the headline numbers); every row has the same keys.")
