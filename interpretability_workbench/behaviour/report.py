"""The report of a finished search: every number measured again from the patches it returns (nothing is
copied from the search's scores), the chosen features with their labels, and the Pareto front of every
evaluated candidate (held-out target ratio vs held-out budget use)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .types import Candidate, LayerRanking, SplitMetrics


@dataclass
class ChosenFeature:
    index: int
    label: str | None
    """The feature's label (user's or automatic; None before the SAE is analysed)."""
    top_tokens: list[str]
    effect_size: float | None
    """Its contrast score (largest Cohen's d over the ranking positions) on the search split."""
    mean_positive: float | None
    """Mean activation on the positives at the last token."""
    mean_negative: float | None


@dataclass
class EditReport:
    patch_id: str
    sae_id: str
    hook_name: str
    layer: int
    mode: str
    strength: float
    rank: int
    """Rank of the weight deltas (0 for clamp)."""
    features: list[ChosenFeature]


@dataclass
class PromptEffect:
    text: str
    target_before: float
    """Summed target probability, original model."""
    target_after: float
    """With the edit set on."""
    kl: float
    """KL(original ‖ patched) of the next-token distribution, nats."""


@dataclass
class BehaviourReport:
    target_ids: list[int]
    target_tokens: list[str]
    target_notes: list[str]
    """How text targets were resolved."""
    feasible: bool
    """The patches are within the budget on the search split."""
    held_out_feasible: bool
    """... and on the held-out split."""
    held_out: SplitMetrics | None
    """Measured from the patches on the held-out prompts (None when no patch was made)."""
    search: SplitMetrics | None
    """Measured from the patches on the search prompts."""
    held_out_positive: list[PromptEffect]
    held_out_negative: list[PromptEffect]
    edits: list[EditReport]
    patch_ids: list[str]
    edit_set: str
    """The job id: the patches carry it as ``extra.edit_set``."""
    best_candidate: int | None
    """The candidate the patches were made from (None when none was within budget)."""
    pareto: list[int]
    """Candidates on the Pareto front (held-out target ratio vs held-out budget use), by budget use."""
    peft_exportable: bool
    export_note: str
    n_evaluated: int
    exhausted: bool
    """The evaluation budget ran out before the search's stages finished."""
    seconds: float
    """Wall time of the job's attempts."""
    message: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out_damage(c: Candidate, max_kl: float, max_target_change: float) -> float:
    h = c.held_out
    return max(h.kl_mean / max_kl, h.max_target_change / max_target_change)


def pareto_front(cands: list[Candidate], max_kl: float, max_target_change: float) -> list[int]:
    """Indices of the candidates no other beats on both held-out target ratio and held-out budget use,
    ordered by budget use."""
    pts = sorted((held_out_damage(c, max_kl, max_target_change), c.held_out.target_ratio, c.index) for c in cands)
    front, best_ratio = [], float("inf")
    for _dmg, ratio, idx in pts:
        if ratio < best_ratio:
            front.append(idx)
            best_ratio = ratio
    return front


def chosen_features(features: list[int], ranking: LayerRanking | None, labels: dict[int, Any]) -> list[ChosenFeature]:
    ranked = {f.index: f for f in (ranking.features if ranking else [])}
    out = []
    for i in features:
        r, lab = ranked.get(i), labels.get(i)
        out.append(ChosenFeature(i, getattr(lab, "label", None), list(getattr(lab, "top_tokens", []) or [])[:10],
                                 r.score if r else None, r.mean_positive if r else None, r.mean_negative if r else None))
    return out


def export_note(modes: list[str]) -> tuple[bool, str]:
    if "clamp" in modes:
        return False, ("the edit set holds a clamp patch: an SAE splice that depends on the input, not a weight "
                       "delta, so it has no exact PEFT form; export it natively (GET /api/patches/{id}/export"
                       "?format=native)")
    return True, ("weight deltas only: GET /api/behaviours/{job_id}/export writes the whole edit set as one "
                  "PEFT LoRA adapter (ranks of patches on the same module concatenated)")
