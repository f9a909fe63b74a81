"""What an inference answers: top tokens, the tokens that moved most, KL, and the comparison record shared by
the one-shot path (``InferenceEngine.compare``), the batched path (``inference/batching.py``) and the live
path (``inference/live.py``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..model.loader import LoadedModel
from ..model.token_text import token_text


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
    return [TokenProb(token_text(lm.tokenizer, int(i)), int(i), float(p), float(logits[i]))
            for p, i in zip(top.values, top.indices)]


def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> float:
    """KL(p ‖ q) for logits ``[d_vocab]``, in nats."""
    lp, lq = p_logits.float().log_softmax(-1), q_logits.float().log_softmax(-1)
    return max(0.0, float((lp.exp() * (lp - lq)).sum()))


def moved_tokens(lm: LoadedModel, orig: Tensor, patched: Tensor, k: int) -> list[TokenMove]:
    po, pp = orig.float().softmax(-1), patched.float().softmax(-1)
    delta = pp - po
    idx = delta.abs().topk(min(k, delta.shape[-1])).indices
    return [TokenMove(token_text(lm.tokenizer, int(i)), int(i), float(po[i]), float(pp[i]), float(delta[i]))
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


def comparisons(lm: LoadedModel, orig: Tensor, patched: Tensor, top_ks: list[int], patch_ids: list[list[str]],
                n_tokens: list[int], from_layers: list[int | None], compute_ms: float) -> list[Comparison]:
    """Comparisons of many rows of original and patched logits ``[batch d_vocab]`` at once: the softmaxes,
    top-k, biggest moves and KL run as a few batched tensor ops and come to the CPU together (one device
    sync per batch rather than a few per token)."""
    lo, lq = orig.float().log_softmax(-1), patched.float().log_softmax(-1)  # [batch d_vocab]
    po, pq = lo.exp(), lq.exp()
    k = min(max(top_ks), po.shape[-1])
    top_o, top_q = po.topk(k, dim=-1), pq.topk(k, dim=-1)  # values/indices [batch k]
    delta = pq - po
    mv = delta.abs().topk(k, dim=-1).indices  # [batch k]
    kl = (po * (lo - lq)).sum(-1).clamp_min(0.0)  # [batch]
    rows = torch.arange(po.shape[0], device=po.device)[:, None]
    host = [t.cpu() for t in (top_o.values, top_o.indices, orig.float()[rows, top_o.indices], top_q.values,
                              top_q.indices, patched.float()[rows, top_q.indices], mv, po[rows, mv],
                              pq[rows, mv], delta[rows, mv], kl)]
    ov, oi, ol, qv, qi, ql, mi, mpo, mpq, md, kls = (t.tolist() for t in host)
    tok = lm.tokenizer
    out = []
    for b, top_k in enumerate(top_ks):
        n = min(top_k, k)
        out.append(Comparison(
            [TokenProb(token_text(tok, i), i, p, lg) for p, i, lg in zip(ov[b][:n], oi[b][:n], ol[b][:n])],
            [TokenProb(token_text(tok, i), i, p, lg) for p, i, lg in zip(qv[b][:n], qi[b][:n], ql[b][:n])],
            [TokenMove(token_text(tok, i), i, a, c, d) for i, a, c, d in zip(mi[b][:n], mpo[b][:n], mpq[b][:n], md[b][:n])
             if d != 0.0],
            float(kls[b]), patch_ids[b], n_tokens[b], from_layers[b], compute_ms))
    return out


def comparison(lm: LoadedModel, orig: Tensor, patched: Tensor, top_k: int, patch_ids: list[str], n_tokens: int,
               from_layer: int | None, compute_ms: float) -> Comparison:
    """The comparison of original and patched logits ``[d_vocab]`` (``comparisons`` of one row)."""
    return comparisons(lm, orig[None], patched[None], [top_k], [patch_ids], [n_tokens], [from_layer], compute_ms)[0]
