"""Exact, batched measurement of the next-token distribution after each prompt, original vs patched.

The prompts of a job are split once (seeded) into a search split and a held-out split of each set, encoded
once by the workbench's rule (``model/tokenize.py``) and kept as right-padded batches: a causal model never
attends forward, so padding after a prompt leaves its last position untouched and no attention mask is
needed. A forward stops at the final norm and only each prompt's last position is unembedded. The original
log-probabilities are computed once per job; a candidate costs one batched forward of the live model as the
patch machinery leaves it (the caller holds ``PatchManager.trial``/``using`` around ``measure``).
"""
from __future__ import annotations

import random
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..model.hook_map import arch_for, get_module
from ..model.hooks import final_hidden_to_logits
from ..model.loader import LoadedModel
from ..model.tokenize import encode_prompt
from .types import SplitMetrics

GROUPS = ("search_positive", "search_negative", "held_positive", "held_negative")


class PromptSplit(NamedTuple):
    search_positive: list[str]
    search_negative: list[str]
    held_positive: list[str]
    """Held-out positives (the report's numbers)."""
    held_negative: list[str]


def split_prompts(positive: list[str], negative: list[str], held_out_fraction: float, seed: int) -> PromptSplit:
    """Seeded split of each set: ``round(n · fraction)`` prompts held out, at least one on each side."""
    rng = random.Random(seed)

    def one(texts: list[str]) -> tuple[list[str], list[str]]:
        order = list(range(len(texts)))
        rng.shuffle(order)
        n_held = min(max(1, round(len(texts) * held_out_fraction)), len(texts) - 1)
        held = sorted(order[:n_held])
        rest = sorted(order[n_held:])
        return [texts[i] for i in rest], [texts[i] for i in held]

    sp, hp = one(positive)
    sn, hn = one(negative)
    return PromptSplit(sp, sn, hp, hn)


class _Stop(Exception):
    pass


@torch.no_grad()
def last_logits(model: nn.Module, seqs: list[Tensor], pad_id: int, batch_size: int = 32) -> Tensor:
    """Next-token logits after each sequence ``[n d_vocab]`` (float32): right-padded batches, forward stopped
    at the final norm, only the last real position of each sequence unembedded."""
    norm = get_module(model, arch_for(model).final_norm)
    device = seqs[0].device
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))  # similar lengths share a batch
    out: list[Tensor | None] = [None] * len(seqs)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long, device=device)  # [batch pos]
        for row, i in enumerate(idx):
            ids[row, :len(seqs[i])] = seqs[i]
        last = torch.tensor([len(seqs[i]) - 1 for i in idx], device=device)  # [batch]
        grabbed: dict[str, Tensor] = {}

        def grab(_m: nn.Module, _i: Any, o: Any, grabbed: dict[str, Tensor] = grabbed, last: Tensor = last) -> None:
            h = o[0] if isinstance(o, (tuple, list)) else o  # [batch pos d_model]
            grabbed["h"] = h[torch.arange(h.shape[0], device=h.device), last]
            raise _Stop

        handle = norm.register_forward_hook(grab)
        try:
            model(input_ids=ids, use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
        logits = final_hidden_to_logits(model, grabbed["h"]).float()  # [batch d_vocab]
        for row, i in enumerate(idx):
            out[i] = logits[row]
    return torch.stack(out)  # type: ignore[arg-type]


class Measured(NamedTuple):
    """Per prompt, in the order of ``Evaluator.texts``."""

    target: Tensor
    """``[n]`` summed target probability after the edit."""
    kl: Tensor
    """``[n]`` KL(original ‖ patched), nats."""


class Evaluator:
    """The prompts of one job, their original distributions, and the measurement of the live model."""

    def __init__(self, lm: LoadedModel, split: PromptSplit, target_ids: list[int], max_tokens: int | None,
                 batch_size: int = 32) -> None:
        self.lm, self.split, self.batch_size = lm, split, batch_size
        self.texts: list[str] = [t for g in GROUPS for t in getattr(split, g)]
        self.groups: dict[str, slice] = {}
        start = 0
        for g in GROUPS:
            n = len(getattr(split, g))
            self.groups[g] = slice(start, start + n)
            start += n
        self.seqs = [encode_prompt(lm, t, max_tokens)[0] for t in self.texts]  # [pos] each
        tok = lm.tokenizer
        pad = getattr(tok, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else (getattr(tok, "eos_token_id", None) or 0))
        self.target_ids = torch.tensor(target_ids, dtype=torch.long)
        self.orig_logp: Tensor | None = None  # [n d_vocab]
        self.orig_target: Tensor | None = None  # [n]

    def _logp(self) -> Tensor:
        return last_logits(self.lm.model, self.seqs, self.pad_id, self.batch_size).log_softmax(-1).cpu()

    def baseline(self) -> None:
        """The original distributions (call inside ``PatchManager.original``)."""
        self.orig_logp = self._logp()
        self.orig_target = self.orig_logp[:, self.target_ids].exp().sum(-1)

    def measure(self) -> Measured:
        """The live model as it is now (call inside ``PatchManager.trial``/``using``) against the original."""
        assert self.orig_logp is not None, "baseline() first"
        logp = self._logp()  # [n d_vocab]
        target = logp[:, self.target_ids].exp().sum(-1)
        kl = (self.orig_logp.exp() * (self.orig_logp - logp)).sum(-1).clamp_min(0.0)
        return Measured(target, kl)

    def metrics(self, m: Measured) -> tuple[SplitMetrics, SplitMetrics]:
        """(search split, held-out split)."""
        return (self._split_metrics(m, "search_positive", "search_negative"),
                self._split_metrics(m, "held_positive", "held_negative"))

    def _split_metrics(self, m: Measured, pos: str, neg: str) -> SplitMetrics:
        assert self.orig_target is not None
        p, n = self.groups[pos], self.groups[neg]
        before = float(self.orig_target[p].double().mean())
        after = float(m.target[p].double().mean())
        kl = m.kl[n].double()
        change = (m.target[n] - self.orig_target[n]).abs().double()
        return SplitMetrics(n_positive=p.stop - p.start, n_negative=n.stop - n.start, target_before=before,
                            target_after=after, target_ratio=after / before if before > 0 else 1.0,
                            kl_mean=float(kl.mean()), kl_max=float(kl.max()), max_target_change=float(change.max()))

    def per_prompt(self, m: Measured, group: str) -> list[dict[str, Any]]:
        """Per prompt of ``group``: text, target before/after, KL."""
        assert self.orig_target is not None
        s = self.groups[group]
        return [{"text": self.texts[i], "target_before": float(self.orig_target[i]),
                 "target_after": float(m.target[i]), "kl": float(m.kl[i])} for i in range(s.start, s.stop)]
