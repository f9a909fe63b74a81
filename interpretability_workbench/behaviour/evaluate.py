"""Exact, batched measurement of the next-token distribution after each prompt, original vs patched.

The prompts of a job are split once (seeded) into a search split and a held-out split of each set, encoded
once by the workbench's rule (``model/tokenize.py``) and kept as right-padded batches: a causal model never
attends forward, so padding after a prompt leaves its last position untouched and no attention mask is
needed. A forward stops at the final norm and only each prompt's last position is unembedded. The original
log-probabilities are computed once per job; a candidate costs one batched forward of the live model as the
patch machinery leaves it (the caller holds ``PatchManager.trial``/``using`` around ``measure``).

A candidate whose lowest patched block is L (a clamp at layer L's residual stream: ``trial`` yields it) runs
only blocks ≥ L, starting from the original run's ``resid_pre`` of a block ≤ L kept by ``baseline``: the
blocks below L compute exactly what the original model does, so the result equals the full forward's up to
float32 rounding (tested). Weight edits (ablate, scale) touch block 0 and run every block.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..model.hook_names import hook_name
from ..model.hooks import forward_last_logits
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


RESID_BYTES = 2 << 30
"""Most memory the original run's kept ``resid_pre`` may take (on the model's device)."""


class Batch(NamedTuple):
    rows: list[int]
    """Which sequences (indices into the evaluator's prompts) the batch holds, in row order."""
    ids: Tensor
    """``[batch pos]`` right-padded token ids."""
    last: Tensor
    """``[batch]`` each row's last real position."""


def make_batches(seqs: list[Tensor], pad_id: int, batch_size: int = 32) -> list[Batch]:
    """Right-padded batches of ``seqs``, similar lengths together (a causal model never attends forward, so
    padding after a prompt leaves its last position untouched and no attention mask is needed)."""
    device = seqs[0].device
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long, device=device)  # [batch pos]
        for row, i in enumerate(idx):
            ids[row, :len(seqs[i])] = seqs[i]
        out.append(Batch(idx, ids, torch.tensor([len(seqs[i]) - 1 for i in idx], device=device)))
    return out


@torch.no_grad()
def last_logits(model: nn.Module, seqs: list[Tensor], pad_id: int, batch_size: int = 32) -> Tensor:
    """Next-token logits after each sequence ``[n d_vocab]`` (float32): right-padded batches, forward stopped
    at the final norm, only the last real position of each sequence unembedded."""
    out: list[Tensor | None] = [None] * len(seqs)
    for b in make_batches(seqs, pad_id, batch_size):
        logits = forward_last_logits(model, b.ids, last_index=b.last).float()  # [batch d_vocab]
        for row, i in enumerate(b.rows):
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
        self.batches = make_batches(self.seqs, self.pad_id, batch_size)
        self.target_ids = torch.tensor(target_ids, dtype=torch.long)
        self.orig_logp: Tensor | None = None  # [n d_vocab]
        self.orig_target: Tensor | None = None  # [n]
        self.resid: dict[int, list[Tensor]] = {}
        """block -> the original run's ``resid_pre [batch pos d_model]`` of each batch (``baseline(blocks)``)."""

    def _logp(self, from_block: int | None = None, keep: list[int] | None = None) -> Tensor:
        start = max((b for b in self.resid if from_block is not None and b <= from_block), default=None)
        out: list[Tensor | None] = [None] * len(self.seqs)
        for bi, b in enumerate(self.batches):
            grabbed: dict[int, Tensor] = {}

            def grab(i: int, grabbed: dict[int, Tensor] = grabbed) -> Callable[[Tensor], None]:
                def fn(act: Tensor) -> None:
                    grabbed[i] = act.detach().clone()
                return fn

            kw: dict[str, Any] = {}
            if start is not None and start > 0:
                kw.update(from_layer=start, resid_pre=self.resid[start][bi])
            logits = forward_last_logits(self.lm.model, b.ids, last_index=b.last,
                                         fwd_hooks={hook_name(i, "resid_pre"): grab(i) for i in keep or []}, **kw)
            for i in keep or []:
                self.resid.setdefault(i, []).append(grabbed[i])
            logp = logits.float().log_softmax(-1).cpu()  # [batch d_vocab]
            for row, i in enumerate(b.rows):
                out[i] = logp[row]
        return torch.stack(out)  # type: ignore[arg-type]

    def block_bytes(self) -> int:
        """Memory one block's kept ``resid_pre`` takes (every batch, padded)."""
        size = torch.empty((), dtype=self.lm.dtype).element_size()
        return sum(int(b.ids.numel()) for b in self.batches) * self.lm.d_model * size

    def baseline(self, blocks: list[int] | None = None, max_bytes: int = RESID_BYTES) -> None:
        """The original distributions (call inside ``PatchManager.original``), keeping the ``resid_pre`` of
        ``blocks`` so that ``measure`` can start there: all of them when they fit in ``max_bytes``, otherwise
        an evenly spaced subset, highest first (a candidate then starts at the nearest kept block below it)."""
        keep = sorted({b for b in blocks or [] if 0 < b < self.lm.n_layers})
        n = max(0, max_bytes // max(self.block_bytes(), 1))
        if len(keep) > n:
            step = len(keep) / n if n else 0
            keep = sorted({keep[len(keep) - 1 - int(i * step)] for i in range(n)})
        self.resid = {}
        self.orig_logp = self._logp(keep=keep)
        self.orig_target = self.orig_logp[:, self.target_ids].exp().sum(-1)

    def measure(self, from_block: int | None = None) -> Measured:
        """The live model as it is now (call inside ``PatchManager.trial``/``using``) against the original.
        ``from_block``: the lowest block the live patches touch (what ``trial`` yields); blocks below it are
        not run when ``baseline`` kept a ``resid_pre`` at or below it. None runs every block."""
        assert self.orig_logp is not None, "baseline() first"
        logp = self._logp(from_block)  # [n d_vocab]
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
