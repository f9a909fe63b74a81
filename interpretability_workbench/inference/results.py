"""What an inference answers: top tokens, the tokens that moved most, KL, and the comparison record shared by
the one-shot path (``InferenceEngine.compare``), the batched path (``inference/batching.py``) and the live
path (``inference/live.py``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from torch import Tensor

from ..model.loader import LoadedModel


@dataclass
class TokenProb:
    token: str
    """Decoded token."""
    id: int
    """Token id."""
    prob: float
    """Probability as the next token."""
    logit: float
    """Logit."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TokenMove:
    token: str
    """Decoded token."""
    id: int
    """Token id."""
    original_probability: float
    """Probability with every patch off."""
    patched_probability: float
    """Probability with the selected patches on."""
    delta: float
    """patched − original probability."""

    def to_dict(self) -> dict:
        return asdict(self)


def top_tokens(lm: LoadedModel, logits: Tensor, k: int) -> list[TokenProb]:
    """``logits [d_vocab]`` -> the k most probable tokens."""
    logits = logits.float()
    probs = logits.softmax(-1)
    top = probs.topk(min(k, probs.shape[-1]))
    return [TokenProb(lm.tokenizer.decode([int(i)]), int(i), float(p), float(logits[i]))
            for p, i in zip(top.values, top.indices)]


def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> float:
    """KL(p ‖ q) for logits ``[d_vocab]``, in nats."""
    lp, lq = p_logits.float().log_softmax(-1), q_logits.float().log_softmax(-1)
    return max(0.0, float((lp.exp() * (lp - lq)).sum()))


def moved_tokens(lm: LoadedModel, orig: Tensor, patched: Tensor, k: int) -> list[TokenMove]:
    po, pp = orig.float().softmax(-1), patched.float().softmax(-1)
    delta = pp - po
    idx = delta.abs().topk(min(k, delta.shape[-1])).indices
    return [TokenMove(lm.tokenizer.decode([int(i)]), int(i), float(po[i]), float(pp[i]), float(delta[i]))
            for i in idx if float(delta[i]) != 0.0]


class Comparison(NamedTuple):
    original: list[TokenProb]
    patched: list[TokenProb]
    moved: list[TokenMove]
    """Tokens whose probability changed most (by |Δp|)."""
    kl: float
    """KL(original ‖ patched) in nats."""
    patch_ids: list[str]
    n_tokens: int
    from_layer: int | None
    """Lowest block rerun for the patched result (None: no patches, patched = original)."""
    compute_ms: float
    """Server compute time of this comparison (of its whole batch when it was batched)."""


def comparison(lm: LoadedModel, orig: Tensor, patched: Tensor, top_k: int, patch_ids: list[str], n_tokens: int,
               from_layer: int | None, compute_ms: float) -> Comparison:
    """The comparison of original and patched logits ``[d_vocab]``."""
    return Comparison(top_tokens(lm, orig, top_k), top_tokens(lm, patched, top_k),
                      moved_tokens(lm, orig, patched, top_k), kl_divergence(orig, patched), patch_ids,
                      n_tokens, from_layer, compute_ms)
