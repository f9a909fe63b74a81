"""Feature map: a 2-D layout of every decoder direction (UMAP, cosine metric) with a cluster per feature,
cached as safetensors + JSON inside the SAE's folder.

Pipeline (all deterministic for a given ``seed``):

1. Rows of ``W_dec [d_sae d_in]`` are scaled to unit norm, so every distance below is cosine distance.
2. Optional pre-reduction (``pca_dims``): the rows are projected onto the top right-singular vectors of
   ``W_dec`` (uncentred, from the exact ``d_in x d_in`` Gram matrix), which keeps dot products — hence
   cosines — as well as any rank-``pca_dims`` map can. It makes the neighbour search cheaper but drops
   the geometry outside those directions; SAE decoders spread over the whole residual space, so it is
   off by default and meant for very wide inputs (d_in in the thousands).
3. UMAP (umap-learn, ``metric="cosine"``, ``random_state=seed``): approximate nearest neighbours by NN-descent,
   a fuzzy neighbour graph, then a layout optimised by SGD. A fixed ``random_state`` makes umap-learn run its
   SGD on one thread: that is the price of a reproducible map. The SGD dominates the cost and grows with
   ``n_epochs x d_sae``, so the default epoch count falls with the number of features (500 up to 10k,
   200 up to 20k, 100 beyond) and large maps start from a PCA layout instead of the spectral one (whose
   eigensolver alone costs about as much as the whole 100-epoch run at 65k points): a little less polish
   of the global arrangement for a map of 65k features in minutes. Pass ``n_epochs``/``init`` to override.
4. Clusters: k-means on the 2-D layout (scikit-learn, ``random_state=seed``). Chosen over HDBSCAN because
   (a) the clusters are then contiguous regions of the map the user looks at, (b) every feature gets a
   cluster (HDBSCAN labels a sizeable share as noise), (c) it is cheap: about 3 s for 65,536 points where
   scikit-learn's HDBSCAN took about 70 s on the same 2-core machine. The number of clusters defaults to
   ``sqrt(d_sae / 2)`` clipped to 2..256; clustering the 2-D layout inherits UMAP's tears and merges,
   which is acceptable for colouring and lasso-style browsing but is not a semantic clustering claim.

The first map in a process also pays numba's JIT compilation of umap-learn/pynndescent (minutes on a
busy CPU); ``warm_up`` runs a tiny map to pay it ahead of time (e.g. when a worker starts).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load as st_load, save as st_save
from torch import Tensor

from ..errors import Invalid, NotFound
from ..store.artifacts import atomic_write_bytes

MAP_TENSORS_NAME = "feature_map.safetensors"
"""xy [d_sae 2] float32 and cluster [d_sae] int64, saved inside the SAE folder."""
MAP_PARAMS_NAME = "feature_map.json"
"""The FeatureMapParams that produced the tensors (and a fingerprint of the decoder they map)."""
MAP_FORMAT_VERSION = 1


def default_n_epochs(n: int) -> int:
    """SGD epochs for ``n`` points: umap-learn's 500 for small maps, then fewer as the map grows."""
    return 500 if n <= 10_000 else 200 if n <= 20_000 else 100


def default_init(n: int) -> str:
    """Spectral initialisation up to 20k points, PCA beyond (the eigensolver is too slow there)."""
    return "spectral" if n <= 20_000 else "pca"


def default_n_clusters(n: int) -> int:
    return int(min(256, max(2, round(math.sqrt(n / 2)))))


def decoder_fingerprint(W_dec: Tensor | np.ndarray) -> str:
    """sha256 of the float32 decoder bytes: a cached map belongs to exactly this decoder."""
    a = np.ascontiguousarray(_as_numpy(W_dec), dtype=np.float32)
    return hashlib.sha256(a.tobytes()).hexdigest()


@dataclass
class FeatureMapParams:
    seed: int = 0
    """Random state of UMAP and k-means: the same seed and decoder give the same map."""
    n_neighbors: int = 15
    """UMAP neighbourhood size: larger keeps more global structure, smaller more local detail."""
    min_dist: float = 0.1
    """UMAP minimum distance between embedded points (0 packs clusters tightly)."""
    n_epochs: int | None = None
    """SGD epochs; None picks ``default_n_epochs(d_sae)``."""
    init: str | None = None
    """'spectral', 'pca' or 'random'; None picks ``default_init(d_sae)``."""
    pca_dims: int | None = None
    """Project unit directions onto this many top singular vectors before UMAP (None: full d_in)."""
    n_clusters: int | None = None
    """k-means clusters on the layout; None picks ``default_n_clusters(d_sae)``."""
    metric: str = "cosine"
    """Distance between decoder directions (fixed: cosine)."""
    d_sae: int = 0
    """Features mapped (filled in by ``feature_map``)."""
    d_in: int = 0
    """Width of each decoder direction (filled in)."""
    decoder_sha256: str = ""
    """Fingerprint of the decoder that was mapped (filled in)."""
    seconds: float = 0.0
    """Wall time of the computation (filled in)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Library versions and anything else worth keeping."""

    def __post_init__(self) -> None:
        if self.n_neighbors < 2:
            raise Invalid(f"n_neighbors must be at least 2, got {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise Invalid(f"min_dist must be in [0, 1], got {self.min_dist}")
        if self.n_epochs is not None and self.n_epochs < 1:
            raise Invalid(f"n_epochs must be positive (or None for the default), got {self.n_epochs}")
        if self.init not in (None, "spectral", "pca", "random"):
            raise Invalid(f"init must be spectral, pca or random, got {self.init!r}")
        if self.pca_dims is not None and self.pca_dims < 2:
            raise Invalid(f"pca_dims must be at least 2 (or None), got {self.pca_dims}")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise Invalid(f"n_clusters must be positive (or None for the default), got {self.n_clusters}")
        if self.metric != "cosine":
            raise Invalid(f"the feature map uses the cosine metric, got {self.metric!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureMapParams":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class FeatureMap:
    xy: Tensor
    """2-D position of every feature ``[d_sae 2]`` float32."""
    cluster: Tensor
    """Cluster id of every feature ``[d_sae]`` int64 (0..n_clusters-1)."""
    params: FeatureMapParams
    """How the map was made (resolved defaults, decoder fingerprint, timing)."""

    def __post_init__(self) -> None:
        if self.xy.ndim != 2 or self.xy.shape[1] != 2:
            raise Invalid(f"xy must be [d_sae 2], got {tuple(self.xy.shape)}")
        if self.cluster.shape != (self.xy.shape[0],):
            raise Invalid(f"cluster must be [d_sae] = [{self.xy.shape[0]}], got {tuple(self.cluster.shape)}")
        self.xy = self.xy.to(torch.float32)
        self.cluster = self.cluster.to(torch.int64)

    @property
    def n_clusters(self) -> int:
        return int(self.cluster.max()) + 1 if self.cluster.numel() else 0

    def matches(self, W_dec: Tensor | np.ndarray) -> bool:
        """Whether this map was computed from exactly this decoder (a stale cache answers False)."""
        return self.params.decoder_sha256 == decoder_fingerprint(W_dec)

    def to_dict(self) -> dict[str, Any]:
        return {"xy": self.xy.tolist(), "cluster": self.cluster.tolist(), "n_clusters": self.n_clusters,
                "params": self.params.to_dict()}


def _as_numpy(W: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(W, Tensor):
        return W.detach().to("cpu", torch.float32).numpy()
    return np.asarray(W, dtype=np.float32)


def unit_directions(W_dec: Tensor | np.ndarray, pca_dims: int | None = None) -> np.ndarray:
    """Unit rows ``[d_sae d]`` (d = d_in, or pca_dims after the uncentred projection)."""
    w = torch.from_numpy(_as_numpy(W_dec).copy()).double()
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if pca_dims is not None and pca_dims < w.shape[1]:
        evecs = torch.linalg.eigh(w.T @ w).eigenvectors  # [d_in d_in], eigenvalues ascending
        basis = evecs[:, -pca_dims:].flip(1)
        # fix each eigenvector's sign so the projection is a function of the decoder alone
        basis = basis * torch.where(basis.sum(0) < 0, -1.0, 1.0)
        w = w @ basis
        w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return w.float().numpy()


def feature_map(W_dec: Tensor | np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                n_epochs: int | None = None, init: str | None = None, pca_dims: int | None = None,
                n_clusters: int | None = None, progress: Callable[[str], None] | None = None,
                _force_approximation: bool = False) -> FeatureMap:
    """Map every decoder direction ``W_dec [d_sae d_in]`` to 2-D and cluster the layout (see module doc).

    Below 4096 features umap-learn finds neighbours exactly; above, by NN-descent. ``progress`` is told each
    stage as it begins (an exception it raises stops the map there)."""
    import sklearn
    import umap
    from sklearn.cluster import KMeans

    params = FeatureMapParams(seed=seed, n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=n_epochs,
                              init=init, pca_dims=pca_dims, n_clusters=n_clusters)
    t0 = time.perf_counter()
    W = _as_numpy(W_dec)
    if W.ndim != 2:
        raise Invalid(f"W_dec must be [d_sae d_in], got shape {W.shape}")
    n = W.shape[0]
    if n <= n_neighbors:
        raise Invalid(f"a map needs more features ({n}) than n_neighbors ({n_neighbors}); lower n_neighbors")
    if not np.isfinite(W).all():
        raise Invalid("W_dec holds NaN or infinite values; the SAE weights are broken")
    params.d_sae, params.d_in = n, W.shape[1]
    params.decoder_sha256 = decoder_fingerprint(W)
    params.n_epochs = params.n_epochs or default_n_epochs(n)
    params.init = params.init or default_init(n)
    params.n_clusters = min(params.n_clusters or default_n_clusters(n), n)
    X = unit_directions(W, params.pca_dims)
    if progress:
        progress(f"laying out {n} decoder directions (UMAP)")
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", n_epochs=params.n_epochs,
                        init=params.init, random_state=seed, n_jobs=1, low_memory=True, verbose=False,
                        force_approximation_algorithm=_force_approximation)
    xy = reducer.fit_transform(X).astype(np.float32)  # [d_sae 2]
    if progress:
        progress(f"clustering the layout into {params.n_clusters} clusters (k-means)")
    km = KMeans(n_clusters=params.n_clusters, n_init=3, random_state=seed)
    labels = km.fit_predict(xy)
    # number clusters by size (0 = largest) so ids do not depend on k-means' internal order
    counts = np.bincount(labels, minlength=params.n_clusters)
    order = np.lexsort((np.arange(params.n_clusters), -counts))
    relabel = np.empty_like(order)
    relabel[order] = np.arange(params.n_clusters)
    params.seconds = time.perf_counter() - t0
    params.extra = {"umap_version": umap.__version__, "sklearn_version": sklearn.__version__,
                    "format_version": MAP_FORMAT_VERSION}
    return FeatureMap(torch.from_numpy(xy), torch.from_numpy(relabel[labels].astype(np.int64)), params)


def warm_up(seed: int = 0) -> float:
    """Compile umap-learn's numba kernels with a tiny map (float32, cosine: the types real maps use).
    Returns the seconds it took (most of it compilation on the first call in a process)."""
    t0 = time.perf_counter()
    w = torch.randn(300, 16, generator=torch.Generator().manual_seed(seed))
    feature_map(w, seed=seed, n_epochs=5, _force_approximation=True)  # the NN-descent path of large maps
    feature_map(w, seed=seed, n_epochs=5, init="pca")
    return time.perf_counter() - t0


def save_feature_map(fmap: FeatureMap, folder: str | Path) -> Path:
    """Write the map into ``folder`` (normally the SAE's folder) as safetensors + JSON; returns the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFound(f"{folder} does not exist; save the SAE before its map")
    blob = st_save({"xy": fmap.xy.contiguous().cpu(), "cluster": fmap.cluster.contiguous().cpu()},
                   metadata={"format_version": str(MAP_FORMAT_VERSION)})
    atomic_write_bytes(folder / MAP_TENSORS_NAME, blob)
    atomic_write_bytes(folder / MAP_PARAMS_NAME, json.dumps(fmap.params.to_dict(), indent=2).encode())
    return folder


def load_feature_map(folder: str | Path) -> FeatureMap:
    """Read a map saved by ``save_feature_map``; NotFound when the folder has none yet."""
    folder = Path(folder)
    t_path, p_path = folder / MAP_TENSORS_NAME, folder / MAP_PARAMS_NAME
    if not (t_path.is_file() and p_path.is_file()):
        raise NotFound(f"{folder} has no feature map yet ({MAP_TENSORS_NAME} + {MAP_PARAMS_NAME}); compute one")
    try:
        params = FeatureMapParams.from_dict(json.loads(p_path.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise Invalid(f"{MAP_PARAMS_NAME} is not a valid feature-map description: {e}") from None
    try:
        tensors = st_load(t_path.read_bytes())
    except Exception as e:  # noqa: BLE001 - safetensors raises several types on corrupt files
        raise Invalid(f"{MAP_TENSORS_NAME} is not a valid safetensors file: {e}") from None
    if "xy" not in tensors or "cluster" not in tensors:
        raise Invalid(f"{MAP_TENSORS_NAME} needs the tensors 'xy' and 'cluster'")
    fmap = FeatureMap(tensors["xy"], tensors["cluster"], params)
    if params.d_sae and fmap.xy.shape[0] != params.d_sae:
        raise Invalid(f"{MAP_TENSORS_NAME} holds {fmap.xy.shape[0]} points but {MAP_PARAMS_NAME} says {params.d_sae}")
    return fmap
