"""The examples an explanation is built and scored on.

* Activating examples are the stored windows of a feature (``top_contexts`` plus the ``quantiles``
  buckets of the analysis row), binned into deciles of the feature's maximum activation. They are split
  into an *explain* set (shown to the explainer) and a held-out *score* set (shown to the scorer), each
  drawn round-robin from the highest decile down so both cover the activation range.
* Non-activating examples are random windows of pool contexts where the feature is zero throughout.
* Hard negatives are windows around the peaks of co-activating features where this feature is zero.

Everything is deterministic given a seed (``feature_rng``).
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .pool import ContextPool

N_DECILES = 10


@dataclass
class Example:
    """A window of text with one feature's activation on each token."""

    tokens: list[str]
    """Decoded tokens, spaces included (joining them gives the text)."""
    activations: list[float]
    """The feature's activation on each token (0 where inactive)."""
    context: int = -1
    """Index of the analysis-corpus context the window comes from (-1 when unknown)."""
    start: int = -1
    """Position of the window's first token in that context (-1 when unknown)."""

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("an example needs at least one token")
        if len(self.tokens) != len(self.activations):
            raise ValueError(f"an example has {len(self.tokens)} tokens but {len(self.activations)} activations")
        if not all(math.isfinite(a) for a in self.activations):
            raise ValueError("activations must be finite numbers")

    @property
    def max(self) -> float:
        return max(self.activations)

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass
class FeatureExamples:
    """Everything the explainer and the scorers see of one feature."""

    index: int
    """Feature index in the SAE."""
    max_activation: float
    """The feature's maximum activation over the analysis corpus (scales deciles and shown strengths);
    raised to the largest example activation when lower."""
    activating: list[Example]
    """Windows where the feature fires (all stored windows; split into explain/score sets later)."""
    non_activating: list[Example] = field(default_factory=list)
    """Random windows where the feature is zero throughout."""
    hard_negatives: list[Example] = field(default_factory=list)
    """Windows where co-activating features fire and this feature is zero throughout."""

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError("feature index must be >= 0")
        for ex in self.activating:
            if ex.max <= 0:
                raise ValueError(f"feature {self.index}: an activating example has no positive activation")
        for name in ("non_activating", "hard_negatives"):
            for ex in getattr(self, name):
                if any(a != 0 for a in ex.activations):
                    raise ValueError(f"feature {self.index}: a {name} example has non-zero activations")
        top = max((ex.max for ex in self.activating), default=0.0)
        self.max_activation = max(float(self.max_activation), top)


class ActivatingSplit(NamedTuple):
    explain: list[Example]
    """Shown to the explainer, strongest first."""
    score: list[Example]
    """Held out for the scorers."""


def feature_rng(seed: int, index: int, purpose: str = "") -> random.Random:
    """A generator that depends only on (seed, feature, purpose): reruns and resumed jobs draw the same."""
    return random.Random(f"{seed}:{index}:{purpose}")


def examples_from_row(data: dict[str, Any]) -> list[Example]:
    """Activating windows of a stored feature row (``data_json``: ``top_contexts`` then every
    ``quantiles`` bucket), de-duplicated by (context, position) and without all-zero windows."""
    seen: set[tuple[int, int]] = set()
    out: list[Example] = []
    windows = list(data.get("top_contexts") or [])
    for bucket in data.get("quantiles") or []:
        windows.extend(bucket.get("examples") or [])
    for w in windows:
        key = (int(w["context"]), int(w["position"]))
        if key in seen:
            continue
        seen.add(key)
        acts = [float(a) for a in w["activations"]]
        if not acts or max(acts) <= 0:
            continue
        out.append(Example(list(w["tokens"]), acts, context=key[0], start=int(w.get("start", -1))))
    return out


def decile(example: Example, max_activation: float, n_bins: int = N_DECILES) -> int:
    """Bin of the example's peak: ``d`` covers ``(d/n, (d+1)/n]`` of ``max_activation`` (0 lowest)."""
    if max_activation <= 0:
        return 0
    return min(max(math.ceil(example.max / max_activation * n_bins), 1), n_bins) - 1


def by_decile(examples: Sequence[Example], max_activation: float, n_bins: int = N_DECILES) -> list[list[Example]]:
    bins: list[list[Example]] = [[] for _ in range(n_bins)]
    for ex in examples:
        bins[decile(ex, max_activation, n_bins)].append(ex)
    return bins


def _round_robin(bins: list[list[Example]], n: int) -> list[Example]:
    """Up to ``n`` examples, one per non-empty bin per round, highest bin first."""
    out: list[Example] = []
    depth = 0
    while len(out) < n and any(depth < len(b) for b in bins):
        for b in reversed(bins):
            if depth < len(b) and len(out) < n:
                out.append(b[depth])
        depth += 1
    return out


def split_activating(examples: Sequence[Example], max_activation: float, *, n_explain: int, n_score: int,
                     rng: random.Random, n_bins: int = N_DECILES) -> ActivatingSplit:
    """Disjoint explain/score sets, both spread across the activation deciles.

    Within each decile (shuffled) examples alternate between the two sets; a decile with an odd count
    flips which set the next decile starts with, so singletons are shared out evenly. Each set then takes
    up to its size round-robin across deciles, highest first.
    """
    if n_explain < 1 or n_score < 0:
        raise ValueError("n_explain must be >= 1 and n_score >= 0")
    explain: list[list[Example]] = [[] for _ in range(n_bins)]
    score: list[list[Example]] = [[] for _ in range(n_bins)]
    flip = 0
    for d, exs in reversed(list(enumerate(by_decile(examples, max_activation, n_bins)))):
        exs = list(exs)
        rng.shuffle(exs)
        for j, ex in enumerate(exs):
            (explain if (j + flip) % 2 == 0 else score)[d].append(ex)
        flip ^= len(exs) % 2
    chosen = sorted(_round_robin(explain, n_explain), key=lambda e: -e.max)
    return ActivatingSplit(chosen, _round_robin(score, n_score))


def pick_negatives(fe: FeatureExamples, n: int, rng: random.Random) -> list[Example]:
    """``n`` negatives: up to half hard negatives, the rest random non-activating windows (each kind
    fills in for the other when short)."""
    hard = list(fe.hard_negatives)
    rand = list(fe.non_activating)
    rng.shuffle(hard)
    rng.shuffle(rand)
    n_hard = min(len(hard), n // 2)
    n_rand = min(len(rand), n - n_hard)
    n_hard = min(len(hard), n - n_rand)
    return hard[:n_hard] + rand[:n_rand]


# sampling over a context pool --------------------------------------------------------------------------

def non_activating_examples(pool: ContextPool, feature: int, n: int, width: int, rng: random.Random,
                            max_tries: int = 50) -> list[Example]:
    """Up to ``n`` distinct random windows of ``width`` tokens (position 0 excluded) where ``feature`` is
    zero throughout."""
    width = min(width, pool.ctx - 1)
    out: list[Example] = []
    seen: set[tuple[int, int]] = set()
    for _ in range(n * max_tries):
        if len(out) >= n:
            break
        row = rng.randrange(pool.n)
        start = rng.randint(1, pool.ctx - width)
        if (row, start) in seen:
            continue
        seen.add((row, start))
        if pool.silent(feature, row, start, width):
            tokens, _ = pool.tokens(row, start, width)
            out.append(Example(tokens, [0.0] * width, context=int(pool.context_index[row]), start=start))
    return out


def hard_negative_examples(pool: ContextPool, feature: int, coactive: Sequence[int], n: int, *,
                           before: int, after: int, rng: random.Random) -> list[Example]:
    """Up to ``n`` windows centred (``before``/``after`` tokens) on tokens where a co-activating feature
    fires and ``feature`` is zero throughout the window; drawn round-robin over ``coactive`` in order."""
    width = min(before + after + 1, pool.ctx - 1)
    queues: list[list[int]] = []
    for j in coactive:
        if j == feature or not 0 <= j < pool.d_sae:
            continue
        tok, _ = pool.active(j)
        q = tok.tolist()
        rng.shuffle(q)
        queues.append(q)
    out: list[Example] = []
    seen: set[tuple[int, int]] = set()
    while len(out) < n and any(queues):
        for q in queues:
            while q and len(out) < n:
                t = q.pop()
                row, pos = divmod(t, pool.ctx)
                start = min(max(pos - before, 1), pool.ctx - width)
                if (row, start) in seen or not pool.silent(feature, row, start, width):
                    continue
                seen.add((row, start))
                tokens, _ = pool.tokens(row, start, width)
                out.append(Example(tokens, [0.0] * width, context=int(pool.context_index[row]), start=start))
                break
    return out


def gather_feature_examples(index: int, data: dict[str, Any], max_activation: float, pool: ContextPool | None, *,
                            n_non_activating: int = 12, n_hard_negatives: int = 12, window_before: int = 10,
                            window_after: int = 5, seed: int = 0) -> FeatureExamples:
    """One feature's examples from its stored row (``data_json`` and ``max_act``) and a context pool
    (None: no negatives, so the feature can be explained but not scored)."""
    activating = examples_from_row(data)
    if pool is None:
        return FeatureExamples(index, max_activation, activating)
    width = (max(len(e.tokens) for e in activating) if activating
             else window_before + window_after + 1)
    width = min(width, pool.ctx - 1)
    before = min(window_before, width - 1)
    rng = feature_rng(seed, index, "negatives")
    coactive = [int(c["index"]) for c in data.get("coactive") or []]
    return FeatureExamples(
        index, max_activation, activating,
        non_activating_examples(pool, index, n_non_activating, width, rng),
        hard_negative_examples(pool, index, coactive, n_hard_negatives, before=before,
                               after=width - 1 - before, rng=rng),
    )
