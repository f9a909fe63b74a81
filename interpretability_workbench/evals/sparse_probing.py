"""k-sparse probing: how much of a labelled property k SAE latents carry, against a probe on the model's raw
activations (the upper reference) on the same tokens.

Tasks are built from the built-in corpus (see ``tasks``: doctest_code, inside_parentheses,
capitalized_word). Per task: a class-balanced sample of labelled tokens, a stratified train/test split,
then on the test split the accuracy of

- a logistic probe on the full-width raw activations ``[d_model]``;
- a logistic probe on every latent that fires on the training tokens;
- for each k: a logistic probe on the k latents whose mean activation differs most between the classes on
  the training tokens (SAEBench's k-sparse probing selection).

Accuracy is balanced (chance 0.5).
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import BadRequest
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder
from .probes import (balanced_accuracy, collect_positions, encode_live, fit_binary_probe,
                     mean_difference_ranking, stratified_split)
from .tasks import TOKEN_TASKS, build_token_tasks, sample_balanced

DEFAULT_KS = (1, 2, 5, 10)


@dataclass
class SparseProbingConfig:
    tasks: tuple[str, ...] = TOKEN_TASKS
    """Token tasks to probe (see ``evals.tasks``)."""
    ks: tuple[int, ...] = DEFAULT_KS
    """Latent counts of the k-sparse probes."""
    max_per_class: int = 500
    """Labelled tokens sampled per class and task."""
    test_fraction: float = 0.2
    max_docs: int = 400
    """Documents read from the end of the corpus (the part training holds out)."""
    context_size: int = 128
    """Tokens read per document."""
    batch_size: int = 8
    """Documents per model forward."""
    seed: int = 0

    def __post_init__(self) -> None:
        self.tasks, self.ks = tuple(self.tasks), tuple(sorted(set(self.ks)))
        if not self.ks or min(self.ks) < 1:
            raise BadRequest(f"ks must be positive integers, got {self.ks}")
        if not 0 < self.test_fraction < 1:
            raise BadRequest("test_fraction must be in (0, 1)")
        if self.max_per_class < 4 or self.max_docs < 1 or self.context_size < 2 or self.batch_size < 1:
            raise BadRequest("max_per_class >= 4, max_docs >= 1, context_size >= 2 and batch_size >= 1 are needed")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TaskProbeResult:
    task: str
    n_train: int
    """Training tokens (both classes)."""
    n_test: int
    raw_accuracy: float
    """Probe on the full-width raw activations."""
    sae_all_accuracy: float
    """Probe on every latent that fired on the training tokens."""
    k_accuracy: dict[int, float]
    """k -> accuracy of the k-sparse latent probe."""
    top_latents: list[int]
    """The max(k) selected latents, best first."""
    n_live_latents: int
    """Latents that fired on the training tokens."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["k_accuracy"] = {str(k): v for k, v in self.k_accuracy.items()}
        return d


@dataclass
class SparseProbingResult:
    config: SparseProbingConfig
    tasks: list[TaskProbeResult]
    skipped: dict[str, str] = field(default_factory=dict)
    """Task -> why it was not probed (too few labelled tokens)."""

    def mean_k_accuracy(self) -> dict[int, float]:
        """k -> mean accuracy over the probed tasks."""
        return {k: float(np.mean([t.k_accuracy[k] for t in self.tasks])) for k in self.config.ks} if self.tasks else {}

    def mean_raw_accuracy(self) -> float | None:
        return float(np.mean([t.raw_accuracy for t in self.tasks])) if self.tasks else None

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "tasks": [t.to_dict() for t in self.tasks],
                "skipped": self.skipped, "mean_raw_accuracy": self.mean_raw_accuracy(),
                "mean_k_accuracy": {str(k): v for k, v in self.mean_k_accuracy().items()}}


def probe_task(task: str, x: Tensor, y: np.ndarray, sae: SparseAutoencoder, ks: tuple[int, ...],
               test_fraction: float = 0.2, seed: int = 0) -> TaskProbeResult:
    """Probe one task from activations ``x [n d_in]`` and labels ``y [n]`` (0/1)."""
    if len(np.unique(y)) != 2:
        raise BadRequest(f"task {task} needs both classes")
    split = stratified_split(y, test_fraction, seed)
    tr, te = split.train, split.test
    xn = x.double().numpy()
    raw = fit_binary_probe(xn[tr], y[tr])
    raw_acc = balanced_accuracy(y[te], (raw.scores(xn[te]) > 0).astype(np.int64))
    enc = encode_live(sae, x)
    z = enc.z[:, (enc.z[tr] > 0).any(0)] if enc.z.size else np.zeros((len(y), 0))  # latents live on train
    latents = enc.latents[(enc.z[tr] > 0).any(0)] if enc.z.size else enc.latents
    if z.shape[1] == 0:  # nothing fires: every latent probe is at chance
        return TaskProbeResult(task, len(tr), len(te), raw_acc, 0.5, {k: 0.5 for k in ks}, [], 0)
    full = fit_binary_probe(z[tr], y[tr])
    all_acc = balanced_accuracy(y[te], (full.scores(z[te]) > 0).astype(np.int64))
    order = mean_difference_ranking(z[tr], y[tr])
    k_acc: dict[int, float] = {}
    for k in ks:
        cols = order[:k]
        probe = fit_binary_probe(z[tr][:, cols], y[tr])
        k_acc[k] = balanced_accuracy(y[te], (probe.scores(z[te][:, cols]) > 0).astype(np.int64))
    return TaskProbeResult(task, len(tr), len(te), raw_acc, all_acc, k_acc, latents[order[: max(ks)]].tolist(),
                           z.shape[1])


def sparse_probing(lm: LoadedModel, sae: SparseAutoencoder, texts: list[str],
                   cfg: SparseProbingConfig | None = None, *, lock: threading.RLock | None = None,
                   progress: Callable[[str], None] | None = None) -> SparseProbingResult:
    """Build the token tasks from ``texts`` (the corpus; its last ``max_docs`` documents are read), collect
    the activations at the SAE's hook once, and probe every task."""
    cfg = cfg or SparseProbingConfig()
    data = build_token_tasks(lm.tokenizer, texts[-cfg.max_docs:], tasks=cfg.tasks, context_size=cfg.context_size)
    samples, skipped = {}, {}
    for i, task in enumerate(cfg.tasks):
        s = sample_balanced(data.labels[task], cfg.max_per_class, cfg.seed + i)
        if len(s.y) < 8:
            skipped[task] = f"only {len(s.y) // 2} labelled tokens of the smaller class; read more documents"
            continue
        samples[task] = s
    # one pass over the documents for every position any task needs
    need: dict[int, set[int]] = {}
    for s in samples.values():
        for d, p in zip(s.doc.tolist(), s.pos.tolist()):
            need.setdefault(d, set()).add(p)
    docs = sorted(need)
    positions = [torch.tensor(sorted(need[d])) for d in docs]
    if progress:
        progress(f"collecting activations from {len(docs)} documents")
    acts = collect_positions(lm, sae.cfg.hook_name, data.input_ids[docs], data.attention_mask[docs], positions,
                             lock=lock, batch_size=cfg.batch_size)
    row_of: dict[tuple[int, int], int] = {}
    r = 0
    for d, ps in zip(docs, positions):
        for p in ps.tolist():
            row_of[(d, p)] = r
            r += 1
    results = []
    for task, s in samples.items():
        if progress:
            progress(f"probing {task}")
        rows = torch.tensor([row_of[(d, p)] for d, p in zip(s.doc.tolist(), s.pos.tolist())])
        results.append(probe_task(task, acts[rows], s.y, sae, cfg.ks, cfg.test_fraction, cfg.seed))
    return SparseProbingResult(cfg, results, skipped)
