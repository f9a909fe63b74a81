"""Linear probes for the evaluations (scikit-learn logistic regression, deterministic), latent rankings
for k-sparse probes, and the model-side activation collection both probing evals share."""
from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder


class Split(NamedTuple):
    train: np.ndarray
    """Row indices of the training split."""
    test: np.ndarray
    """Row indices of the test split."""


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> Split:
    """Per label, a seeded shuffle; the last ``test_fraction`` (at least one when a label has two rows) is test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for lab in np.unique(labels):
        rows = np.flatnonzero(labels == lab)
        rng.shuffle(rows)
        n_test = round(len(rows) * test_fraction)
        if len(rows) >= 2:
            n_test = min(max(1, n_test), len(rows) - 1)
        else:
            n_test = 0
        test.append(rows[len(rows) - n_test:])
        train.append(rows[: len(rows) - n_test])
    return Split(np.sort(np.concatenate(train)), np.sort(np.concatenate(test)))


class BinaryProbe(NamedTuple):
    weight: np.ndarray
    """``[d]`` coefficients."""
    bias: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.bias

    def direction(self) -> Tensor:
        """Unit probe direction ``[d]`` (float32)."""
        w = torch.from_numpy(self.weight).float()
        return w / w.norm().clamp_min(1e-12)


def fit_binary_probe(x: np.ndarray, y: np.ndarray, *, c: float = 1.0, max_iter: int = 1000) -> BinaryProbe:
    """L2 logistic regression with balanced class weights (``y`` in {0, 1})."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter)
    clf.fit(x, y.astype(np.int64))
    return BinaryProbe(clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))


def l1_probe_weights(z: np.ndarray, y: np.ndarray, *, l1_decay: float = 0.01) -> np.ndarray:
    """Weights ``[d]`` of an L1-penalised logistic probe (liblinear, deterministic); ``l1_decay`` is the penalty
    per sample, i.e. ``C = 1 / (l1_decay * n)``, matching a mean log-loss + ``l1_decay * |w|_1`` objective."""
    from sklearn.linear_model import LogisticRegression

    c = 1.0 / (l1_decay * max(1, len(y)))
    clf = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", class_weight="balanced", max_iter=1000,
                             random_state=0)
    clf.fit(z, y.astype(np.int64))
    return clf.coef_[0]


def f1_score(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean of the per-class recalls (0.5 is chance for two classes)."""
    classes = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def mean_difference_ranking(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Latent indices sorted by ``|mean(z | y=1) - mean(z | y=0)|``, largest first (stable for ties)."""
    diff = np.abs(z[y == 1].mean(0) - z[y == 0].mean(0))
    return np.argsort(-diff, kind="stable")


class LiveLatents(NamedTuple):
    z: np.ndarray
    """Activations of the live latents ``[n n_live]`` (float64)."""
    latents: np.ndarray
    """Latent index of each column ``[n_live]``."""


@torch.no_grad()
def encode_live(sae: SparseAutoencoder, x: Tensor, batch: int = 1024) -> LiveLatents:
    """Encode ``x [n d_in]`` keeping only latents that fire on some row: a TopK SAE of 65k latents on a
    thousand tokens stays a few thousand columns wide instead of ``[n d_sae]`` dense."""
    rows, cols, vals = [], [], []
    for s in range(0, x.shape[0], batch):
        f = sae.encode(x[s: s + batch].to(sae.W_enc.device, torch.float32)).float().cpu()
        nz = f.nonzero()
        rows.append(nz[:, 0] + s)
        cols.append(nz[:, 1])
        vals.append(f[nz[:, 0], nz[:, 1]])
    if not rows:
        return LiveLatents(np.zeros((0, 0)), np.zeros(0, dtype=np.int64))
    r, c, v = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    latents, col = torch.unique(c, return_inverse=True)
    z = torch.zeros(x.shape[0], len(latents), dtype=torch.float64)
    z[r, col] = v.double()
    return LiveLatents(z.numpy(), latents.numpy())


@torch.no_grad()
def collect_positions(lm: LoadedModel, hook_name: str, input_ids: Tensor, attention_mask: Tensor,
                      positions: list[Tensor], *, lock: threading.RLock | None = None,
                      batch_size: int = 16) -> Tensor:
    """Activations at ``hook_name`` for selected positions: row ``i`` of ``input_ids [n ctx]`` (right-padded,
    ``attention_mask [n ctx]``) contributes ``positions[i]`` (1-D position indices). Returns ``[sum d_model]``
    float32 on CPU, rows in order. Each forward holds ``lock`` and stops at the hook's layer."""
    out: list[Tensor] = []
    for s in range(0, input_ids.shape[0], batch_size):
        ids = input_ids[s: s + batch_size]
        mask = attention_mask[s: s + batch_size]
        width = int(mask.sum(1).max())  # trim padding columns every row lacks
        with lock or nullcontext():
            res = run_with_cache(lm.model, ids[:, :width].to(lm.device), [hook_name],
                                 attention_mask=mask[:, :width].to(lm.device))
        acts = res.cache[hook_name].float().cpu()  # [b ctx d_model]
        for j in range(ids.shape[0]):
            out.append(acts[j, positions[s + j]])
    return torch.cat(out) if out else torch.zeros(0, lm.d_model)
