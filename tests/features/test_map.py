"""Feature map: shapes, determinism, planted clusters recovered, neighbours preserved, save/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interpretability_workbench.errors import Invalid, NotFound
from interpretability_workbench.features.map import (MAP_PARAMS_NAME, MAP_TENSORS_NAME, FeatureMap, feature_map,
                                                     load_feature_map, save_feature_map, unit_directions)

N_CLUSTERS, PER_CLUSTER, D_IN = 8, 40, 64


def planted_directions(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``[320 64]`` directions in 8 tight cones around random centres (within-cone cosine ~0.9), shuffled,
    scaled by random norms (the map must only see directions)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(N_CLUSTERS, D_IN, generator=g)
    centres /= centres.norm(dim=1, keepdim=True)
    labels = torch.arange(N_CLUSTERS).repeat_interleave(PER_CLUSTER)
    noise = torch.randn(len(labels), D_IN, generator=g) * (0.45 / D_IN ** 0.5)
    w = centres[labels] + noise
    w = w * torch.empty(len(labels), 1).uniform_(0.2, 5.0, generator=g)
    perm = torch.randperm(len(labels), generator=g)
    return w[perm], labels[perm].numpy()


@pytest.fixture(scope="module")
def planted() -> tuple[torch.Tensor, np.ndarray, FeatureMap]:
    w, labels = planted_directions()
    return w, labels, feature_map(w, seed=3, n_neighbors=10, n_clusters=N_CLUSTERS)


def test_shapes_and_params(planted) -> None:
    w, _, fmap = planted
    assert fmap.xy.shape == (w.shape[0], 2) and fmap.xy.dtype == torch.float32
    assert fmap.cluster.shape == (w.shape[0],) and fmap.cluster.dtype == torch.int64
    assert torch.isfinite(fmap.xy).all()
    assert set(fmap.cluster.tolist()) == set(range(N_CLUSTERS))
    # cluster ids are ordered by size: 0 is the largest
    sizes = torch.bincount(fmap.cluster)
    assert (sizes[:-1] >= sizes[1:]).all()
    p = fmap.params
    assert (p.d_sae, p.d_in, p.n_epochs, p.init, p.metric) == (w.shape[0], D_IN, 500, "spectral", "cosine")
    assert fmap.matches(w) and p.seconds > 0
    d = fmap.to_dict()
    assert len(d["xy"]) == w.shape[0] and d["n_clusters"] == N_CLUSTERS


def test_deterministic_for_a_seed(planted) -> None:
    w, _, fmap = planted
    again = feature_map(w, seed=3, n_neighbors=10, n_clusters=N_CLUSTERS)
    assert torch.equal(again.xy, fmap.xy) and torch.equal(again.cluster, fmap.cluster)
    other = feature_map(w, seed=4, n_neighbors=10, n_clusters=N_CLUSTERS)
    assert not torch.equal(other.xy, fmap.xy)


def test_planted_clusters_recovered(planted) -> None:
    from sklearn.metrics import adjusted_rand_score

    _, labels, fmap = planted
    assert adjusted_rand_score(labels, fmap.cluster.numpy()) > 0.95


def test_map_neighbours_are_cosine_neighbours(planted) -> None:
    w, labels, fmap = planted
    k = 10
    xy = fmap.xy.double()
    d2 = torch.cdist(xy, xy)
    d2.fill_diagonal_(float("inf"))
    nn_map = d2.topk(k, largest=False).indices  # [n k]
    u = w / w.norm(dim=1, keepdim=True)
    cos = u @ u.T
    cos.fill_diagonal_(-2)
    nn_cos = cos.topk(PER_CLUSTER - 1, dim=1).indices  # a point's cosine neighbourhood: its cone
    hits = [len(set(nn_map[i].tolist()) & set(nn_cos[i].tolist())) / k for i in range(len(w))]
    assert np.mean(hits) > 0.95
    # the map neighbours are far closer in cosine than random features are
    mean_cos_map = float(cos.gather(1, nn_map).mean())
    assert mean_cos_map > 0.8 > float(cos[cos > -2].mean()) + 0.5
    same = (labels[nn_map.numpy()] == labels[:, None]).mean()
    assert same > 0.95


def test_save_load_round_trip(planted, tmp_path) -> None:
    w, _, fmap = planted
    with pytest.raises(NotFound):
        load_feature_map(tmp_path)
    save_feature_map(fmap, tmp_path)
    assert (tmp_path / MAP_TENSORS_NAME).is_file() and (tmp_path / MAP_PARAMS_NAME).is_file()
    back = load_feature_map(tmp_path)
    assert torch.equal(back.xy, fmap.xy) and torch.equal(back.cluster, fmap.cluster)
    assert back.params == fmap.params
    assert back.matches(w) and not back.matches(w + 1e-3)
    (tmp_path / MAP_TENSORS_NAME).write_bytes(b"not safetensors")
    with pytest.raises(Invalid):
        load_feature_map(tmp_path)
    with pytest.raises(NotFound):
        save_feature_map(fmap, tmp_path / "missing")


def test_pca_projection_keeps_cosines_of_low_rank_decoders() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(200, 6, generator=g) @ torch.randn(6, 48, generator=g)  # rank 6 in 48-d
    u = w / w.norm(dim=1, keepdim=True)
    p = torch.from_numpy(unit_directions(w, pca_dims=6)).double()
    assert p.shape == (200, 6)
    torch.testing.assert_close(p @ p.T, (u @ u.T).double(), atol=1e-5, rtol=0)


def test_invalid_inputs() -> None:
    with pytest.raises(Invalid):
        feature_map(torch.randn(10, 4), n_neighbors=15)
    with pytest.raises(Invalid):
        feature_map(torch.full((40, 4), float("nan")), n_neighbors=5)
    with pytest.raises(Invalid):
        feature_map(torch.randn(40, 4), n_neighbors=5, init="tsne")


@pytest.mark.slow
def test_nn_descent_path_keeps_planted_clusters() -> None:
    """The approximate neighbour search large maps use (forced here on a small set)."""
    from sklearn.metrics import adjusted_rand_score

    w, labels = planted_directions(1)
    fmap = feature_map(w, seed=0, n_neighbors=10, n_clusters=N_CLUSTERS, _force_approximation=True)
    assert adjusted_rand_score(labels, fmap.cluster.numpy()) > 0.95
