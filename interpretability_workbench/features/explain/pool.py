"""A pool of analysis contexts with the sparse SAE activations of every feature on them.

Non-activating examples and hard negatives need to know where a feature is *zero*, which the stored
feature rows (top windows only) cannot say. The pool answers it exactly: a seeded sample of contexts is
run through the model once (stopping at the SAE's layer), encoded sparsely, and kept as sorted
(feature, token) triplets, so "where does feature f fire" is a slice and "is f silent over this window" a
lookup. Position 0 (the attention sink) is excluded as in the analysis.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from ...model.hooks import run_with_cache
from ...model.loader import LoadedModel
from ...sae.model import SparseAutoencoder
from ..stats import sparse_encode


class ContextPool:
    """Token ids of ``n`` contexts plus every (token, feature, value) activation on them."""

    def __init__(self, ids: Tensor, token: Tensor, feature: Tensor, value: Tensor, d_sae: int,
                 vocab: list[str], context_index: Tensor | None = None) -> None:
        """``ids [n ctx]``; ``token [nnz]`` flat ``row * ctx + pos`` (pos >= 1); ``feature``/``value [nnz]``;
        ``context_index [n]`` the rows' indices in the analysis corpus (default ``arange(n)``)."""
        if ids.ndim != 2 or ids.shape[1] < 2:
            raise ValueError("ids must be [n_contexts ctx] with ctx >= 2")
        if not (token.shape == feature.shape == value.shape):
            raise ValueError("token, feature and value must have the same shape")
        self.ids = ids.cpu()
        self.n, self.ctx = ids.shape
        self.d_sae = d_sae
        self.vocab = vocab
        self.context_index = (torch.arange(self.n) if context_index is None else context_index.cpu()).long()
        key = feature.cpu().long() * (self.n * self.ctx) + token.cpu().long()
        key, order = key.sort()
        self._feature = feature.cpu().long()[order]
        self._token = token.cpu().long()[order]
        self._value = value.cpu().float()[order]
        self._offsets = torch.searchsorted(self._feature, torch.arange(d_sae + 1))  # [d_sae+1]
        self._ids_list: list[list[int]] = self.ids.tolist()

    @classmethod
    def from_dense(cls, ids: Tensor, acts: Tensor, vocab: list[str], context_index: Tensor | None = None
                   ) -> ContextPool:
        """From dense activations ``acts [n ctx d_sae]`` (position 0 is ignored)."""
        a = acts.clone()
        a[:, 0] = 0
        row, pos, feat = (a > 0).nonzero(as_tuple=True)
        return cls(ids, row * ids.shape[1] + pos, feat, a[row, pos, feat], acts.shape[2], vocab, context_index)

    def active(self, feature: int) -> tuple[Tensor, Tensor]:
        """Flat token indices ``[m]`` (sorted) where ``feature`` fires, and the values ``[m]``."""
        if not 0 <= feature < self.d_sae:
            raise IndexError(f"feature {feature} is out of range 0..{self.d_sae - 1}")
        lo, hi = int(self._offsets[feature]), int(self._offsets[feature + 1])
        return self._token[lo:hi], self._value[lo:hi]

    def window_activations(self, feature: int, row: int, start: int, width: int) -> list[float]:
        """Activations of ``feature`` over tokens ``start .. start+width-1`` of pool row ``row``."""
        tok, val = self.active(feature)
        base = row * self.ctx
        lo = int(torch.searchsorted(tok, torch.tensor(base + start)))
        hi = int(torch.searchsorted(tok, torch.tensor(base + start + width)))
        out = [0.0] * width
        for t, v in zip(tok[lo:hi].tolist(), val[lo:hi].tolist()):
            out[t - base - start] = v
        return out

    def silent(self, feature: int, row: int, start: int, width: int) -> bool:
        """True when ``feature`` is zero over the whole window."""
        tok, _ = self.active(feature)
        base = row * self.ctx
        lo = int(torch.searchsorted(tok, torch.tensor(base + start)))
        return lo >= tok.numel() or int(tok[lo]) >= base + start + width

    def tokens(self, row: int, start: int, width: int) -> tuple[list[str], list[int]]:
        ids = self._ids_list[row][start: start + width]
        return [self.vocab[i] if i < len(self.vocab) else "" for i in ids], ids


@torch.no_grad()
def build_context_pool(lm: LoadedModel, sae: SparseAutoencoder, contexts: Tensor, vocab: list[str], *,
                       n_contexts: int = 256, seed: int = 0, batch_size: int = 16, lock: Any = None
                       ) -> ContextPool:
    """Sample ``n_contexts`` rows of ``contexts [n_ctx ctx]`` (seeded, without replacement), run them to the
    SAE's layer under ``lock`` and keep their sparse activations."""
    if contexts.ndim != 2 or contexts.shape[1] < 2:
        raise ValueError("contexts must be [n_contexts ctx] with ctx >= 2")
    lock = lock if lock is not None else nullcontext()
    n_ctx, T = contexts.shape
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(n_ctx, generator=g)[: min(n_contexts, n_ctx)].sort().values
    ids = contexts[rows]
    hook = sae.cfg.hook_name
    toks, feats, vals = [], [], []
    for i in range(0, ids.shape[0], batch_size):
        chunk = ids[i: i + batch_size]
        with lock:
            res = run_with_cache(lm.model, chunk.to(lm.device), [hook])
        a = res.cache[hook][:, 1:]  # [batch ctx-1 d_model], position 0 dropped
        x = a.reshape(-1, a.shape[-1]).to(sae.W_enc.device, torch.float32)
        acts = sparse_encode(sae, x)
        tok = acts.token.cpu()
        toks.append((i + tok // (T - 1)) * T + tok % (T - 1) + 1)
        feats.append(acts.feature.cpu())
        vals.append(acts.value.float().cpu())
    return ContextPool(ids, torch.cat(toks), torch.cat(feats), torch.cat(vals), sae.cfg.d_sae, vocab, rows)
