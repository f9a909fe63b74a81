"""What a behaviour-removal search takes and produces: the request, its budget, edits, per-split metrics and
evaluated candidates (dataclasses validated in ``__post_init__``, with ``to_dict``/``from_dict``)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SEARCH_MODES = ("ablate", "scale", "clamp")
"""Modes the search may use: ablate (fraction t ≤ 1 of the span removed), scale (factor s = 1 − t, used for
t > 1, i.e. pushing the component past zero, when allowed), clamp (SAE splice holding the features at v ≤ 0)."""
POSITIONS = ("last", "max", "all")
MAX_PROMPTS = 256
"""Most prompts per set (as the REST schema allows)."""
DAMAGE_WEIGHT = 0.01
"""Objective of a feasible candidate: target ratio + DAMAGE_WEIGHT · budget use (prefers the gentler of two
candidates that remove the behaviour equally)."""


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def _finite(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number")
    return v


@dataclass
class Budget:
    """How much the negative prompts may change (measured on the held-out split for the report)."""

    max_kl: float = 0.01
    """Largest mean KL(original ‖ patched) of the next-token distribution over the negatives, in nats."""
    max_target_change: float = 0.05
    """Largest |Δ target probability| on any single negative prompt."""

    def __post_init__(self) -> None:
        self.max_kl = _finite("max_kl", self.max_kl)
        self.max_target_change = _finite("max_target_change", self.max_target_change)
        if self.max_kl <= 0 or not 0 < self.max_target_change <= 1:
            raise ValueError("budget: max_kl must be > 0 and max_target_change in (0, 1]")

    def use(self, kl_mean: float, max_target_change: float) -> float:
        """Fraction of the budget spent (the candidate is within budget when this is ≤ 1)."""
        return max(kl_mean / self.max_kl, max_target_change / self.max_target_change)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchRequest:
    """One behaviour-removal search (``POST /api/behaviours/remove``)."""

    positive: list[str]
    """Prompts after which the model shows the behaviour (its next token is a target)."""
    negative: list[str]
    """Prompts whose next-token distribution must stay as it is."""
    target_tokens: list[str | int] | None = None
    """Target tokens (ids, or text whose first token is used); their probabilities are summed."""
    target_text: str | None = None
    """The phrase the behaviour produces: its first token is the target (give this or target_tokens)."""
    sae_ids: list[str] | None = None
    """SAEs to search over; None = every SAE that fits the loaded model (restricted to ``layers`` if given)."""
    layers: list[int] | None = None
    """Layers to search at (resid_post SAEs); layers without one are trained first when ``train_missing``."""
    train_missing: bool = False
    """Train SAEs for the layers in ``layers`` that have none (one training run, then the search)."""
    train_tokens: int = 100_000
    """Training tokens for missing layers."""
    train_d_sae: int = 4608
    """Latents of SAEs trained for missing layers."""
    train_k: int = 32
    """Active latents per token of SAEs trained for missing layers (topk)."""
    train_corpus: str = "default"
    """Corpus id the missing layers are trained on (it should contain text showing the behaviour)."""
    budget: Budget = field(default_factory=Budget)
    max_evaluations: int = 150
    """Candidates evaluated at most (each one exact: both splits through the patch machinery)."""
    max_features: int = 32
    """Most features per layer the search considers (the top of the contrast ranking)."""
    modes: list[str] = field(default_factory=lambda: list(SEARCH_MODES))
    """Modes allowed: any of ablate, scale, clamp."""
    positions: list[str] = field(default_factory=lambda: ["last", "max"])
    """Positions the contrast ranking reads (last token, max over tokens, every token); a feature's score is
    its largest effect size over them."""
    held_out_fraction: float = 0.5
    """Share of each prompt set held out: the search decides on the rest, the report measures on these."""
    search_margin: float = 0.5
    """Fraction of the budget a candidate may spend on the search split to count as within budget. The search
    pushes its edits to that edge, and the held-out prompts it never sees scatter around it: below 1 leaves
    room for that scatter (the report always measures against the whole budget). In the bench, margin 1 put
    the held-out KL at 1.7× the budget; 0.5 kept it within."""
    seed: int = 0
    """Seeds the split; the search is deterministic given it."""
    enable_result: bool = True
    """Leave the resulting patches enabled on the live model."""
    name: str | None = None
    """Name of the resulting edit set (a description when omitted)."""

    def __post_init__(self) -> None:
        if isinstance(self.budget, dict):
            self.budget = _from_dict(Budget, self.budget)
        self.positive, self.negative = [str(t) for t in self.positive], [str(t) for t in self.negative]
        if len(self.positive) < 2 or len(self.negative) < 2:
            raise ValueError("give at least 2 positive and 2 negative prompts (one of each is held out)")
        if len(self.positive) > MAX_PROMPTS or len(self.negative) > MAX_PROMPTS:
            raise ValueError(f"at most {MAX_PROMPTS} prompts per set")
        if any(not t.strip() for t in self.positive + self.negative):
            raise ValueError("prompts must not be empty")
        if (self.target_tokens is None) == (self.target_text is None):
            raise ValueError("give exactly one of target_tokens and target_text")
        if self.target_tokens is not None and not 1 <= len(self.target_tokens) <= 64:
            raise ValueError("give 1 to 64 target_tokens")
        if self.target_text is not None and not self.target_text.strip():
            raise ValueError("target_text is empty")
        if self.sae_ids is not None:
            self.sae_ids = list(dict.fromkeys(self.sae_ids))
            if not self.sae_ids:
                raise ValueError("sae_ids is empty; leave it out to use every SAE of the loaded model")
        if self.layers is not None:
            self.layers = sorted({int(x) for x in self.layers})
            if not self.layers or self.layers[0] < 0:
                raise ValueError("layers must be non-empty block indices >= 0")
        if self.train_missing and not self.layers:
            raise ValueError("train_missing needs the layers to search at")
        if self.train_tokens < 1024 or self.train_d_sae < 1 or not 0 < self.train_k <= self.train_d_sae:
            raise ValueError("train_tokens must be >= 1024 and 0 < train_k <= train_d_sae")
        if not 1 <= self.max_evaluations <= 10_000 or not 1 <= self.max_features <= 4096:
            raise ValueError("max_evaluations must be in 1..10000 and max_features in 1..4096")
        self.modes = list(dict.fromkeys(self.modes))
        if not self.modes or any(m not in SEARCH_MODES for m in self.modes):
            raise ValueError(f"modes must be a non-empty subset of {', '.join(SEARCH_MODES)}")
        self.positions = list(dict.fromkeys(self.positions))
        if not self.positions or any(p not in POSITIONS for p in self.positions):
            raise ValueError(f"positions must be a non-empty subset of {', '.join(POSITIONS)}")
        if not 0 < self.held_out_fraction < 1:
            raise ValueError("held_out_fraction must be in (0, 1)")
        self.search_margin = _finite("search_margin", self.search_margin)
        if not 0 < self.search_margin <= 1:
            raise ValueError("search_margin must be in (0, 1]")

    @property
    def targets(self) -> list[str | int]:
        return list(self.target_tokens) if self.target_tokens is not None else [str(self.target_text)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchRequest:
        return _from_dict(cls, d)


@dataclass
class Edit:
    """One patch of a candidate: features of one SAE in one mode at one strength."""

    sae_id: str
    hook_name: str
    layer: int
    mode: str
    """ablate | scale | clamp."""
    strength: float
    """ablate: fraction removed; scale: factor; clamp: value the activations are held at."""
    features: list[int]
    """Feature indices, best-ranked first."""

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_MODES:
            raise ValueError(f"edit mode must be one of {', '.join(SEARCH_MODES)}")
        self.features = [int(f) for f in self.features]
        if not self.features or len(set(self.features)) != len(self.features):
            raise ValueError("an edit needs distinct features")
        self.strength = _finite("strength", self.strength)

    def key(self) -> list[Any]:
        return [self.sae_id, self.mode, round(self.strength, 6), sorted(self.features)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Edit:
        return _from_dict(cls, d)


def edits_key(edits: list[Edit]) -> str:
    """Canonical text of a candidate's edits (order of edits and of features does not matter)."""
    return json.dumps(sorted(e.key() for e in edits), separators=(",", ":"))


@dataclass
class SplitMetrics:
    """A candidate measured on one split of the prompts (original model vs patched)."""

    n_positive: int
    n_negative: int
    target_before: float
    """Mean target probability on the positives, original model."""
    target_after: float
    """Mean target probability on the positives, patched."""
    target_ratio: float
    """target_after / target_before."""
    kl_mean: float
    """Mean KL(original ‖ patched) over the negatives, nats."""
    kl_max: float
    """Largest KL over the negatives."""
    max_target_change: float
    """Largest |Δ target probability| over the negatives."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitMetrics:
        return _from_dict(cls, d)


@dataclass
class Candidate:
    """One evaluated candidate: its edits measured on both splits."""

    index: int
    """Evaluation order within the job."""
    stage: str
    """screen | refine | prune | combine."""
    edits: list[Edit]
    search: SplitMetrics
    """On the split the search decides on."""
    held_out: SplitMetrics
    """On the held-out split (what the report and the Pareto front use)."""
    feasible: bool
    """Within budget on the search split."""
    objective: float
    """target ratio + DAMAGE_WEIGHT · budget use (search split); lower is better."""
    budget_use: float
    """Fraction of the budget spent on the search split (≤ 1: feasible)."""

    @property
    def key(self) -> str:
        return edits_key(self.edits)

    @property
    def n_features(self) -> int:
        return sum(len(e.features) for e in self.edits)

    def sort_key(self) -> tuple[int, float, int, int]:
        """Feasible first by objective; infeasible by how far off they are (ratio + budget use)."""
        if self.feasible:
            return (0, self.objective, self.n_features, self.index)
        return (1, self.search.target_ratio + self.budget_use, self.n_features, self.index)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "stage": self.stage, "edits": [e.to_dict() for e in self.edits],
                "search": self.search.to_dict(), "held_out": self.held_out.to_dict(), "feasible": self.feasible,
                "objective": self.objective, "budget_use": self.budget_use}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(index=int(d["index"]), stage=str(d["stage"]), edits=[Edit.from_dict(e) for e in d["edits"]],
                   search=SplitMetrics.from_dict(d["search"]), held_out=SplitMetrics.from_dict(d["held_out"]),
                   feasible=bool(d["feasible"]), objective=float(d["objective"]),
                   budget_use=float(d["budget_use"]))


def score(search: SplitMetrics, budget: Budget, margin: float = 1.0) -> tuple[bool, float, float]:
    """(feasible: within ``margin`` of the budget, objective, budget use) of metrics on the search split."""
    use = budget.use(search.kl_mean, search.max_target_change)
    return use <= margin, search.target_ratio + DAMAGE_WEIGHT * min(use, 1.0), use


@dataclass
class RankedFeature:
    """A feature of one SAE as the contrast ranking sees it (search split)."""

    index: int
    score: float
    """Largest effect size (Cohen's d) over the ranking positions."""
    effect_sizes: dict[str, float]
    """Effect size per position."""
    mean_positive: float
    """Mean activation on the positives at the last token."""
    mean_negative: float
    """Mean activation on the negatives at the last token."""
    positive_rate: float
    """Fraction of positives where it fires at the last token."""
    negative_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RankedFeature:
        return _from_dict(cls, d)


@dataclass
class LayerRanking:
    """One SAE's features ranked by contrast, best first."""

    sae_id: str
    hook_name: str
    layer: int
    features: list[RankedFeature]

    @property
    def indices(self) -> list[int]:
        return [f.index for f in self.features]

    @property
    def clampable(self) -> bool:
        """Clamp splices an SAE at a block's output: resid_post SAEs only."""
        return self.hook_name.endswith("hook_resid_post")

    def to_dict(self) -> dict[str, Any]:
        return {"sae_id": self.sae_id, "hook_name": self.hook_name, "layer": self.layer,
                "features": [f.to_dict() for f in self.features]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerRanking:
        return cls(d["sae_id"], d["hook_name"], int(d["layer"]), [RankedFeature.from_dict(f) for f in d["features"]])
