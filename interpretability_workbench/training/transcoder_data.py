"""What transcoders train on: the MLP input (after its norm) and the MLP output of every trained layer,
from one forward per batch of contexts (``run_with_cache`` on ``blocks.L.ln2.hook_normalized`` and
``blocks.L.hook_mlp_out``, stopping after the deepest MLP). Plain torch: the Lightning module reads it
through a ``DataLoader``.

Contexts are visited in a shuffled order (a new order each pass), tokens are mixed in a buffer of
``buffer_tokens``, and position 0 of each context (the attention sink) is dropped, as for SAEs.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Iterator, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from ..model.hook_names import MLP_IN, hook_name
from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel


class MLPBatch(NamedTuple):
    x: Tensor
    """MLP inputs ``[batch n_layers d_model]`` (float32, CPU)."""
    y: Tensor
    """MLP outputs ``[batch n_layers d_model]``."""


def mlp_hooks(layers: list[int]) -> tuple[list[str], list[str]]:
    """(input hooks, output hooks) of ``layers``."""
    return [hook_name(layer, MLP_IN) for layer in layers], [hook_name(layer, "mlp_out") for layer in layers]


@torch.no_grad()
def mlp_io(lm: LoadedModel, ids: Tensor, layers: list[int], scope: AbstractContextManager[Any] | None = None) -> MLPBatch:
    """MLP inputs and outputs of ``layers`` for contexts ``ids [n_ctx ctx]``, position 0 dropped:
    ``[n_ctx*(ctx-1) n_layers d_model]`` each."""
    ins, outs = mlp_hooks(layers)
    with scope if scope is not None else nullcontext():
        res = run_with_cache(lm.model, ids.to(lm.device), ins + outs, stop_at_layer=True)

    def stack(names: list[str]) -> Tensor:
        a = torch.stack([res.cache[h][:, 1:] for h in names], dim=2)  # [n_ctx ctx-1 n_layers d]
        return a.reshape(-1, len(names), a.shape[-1]).float().cpu()

    return MLPBatch(stack(ins), stack(outs))


def sample_mlp_io(lm: LoadedModel, contexts: Tensor, layers: list[int], n_tokens: int, *, model_batch_size: int = 8,
                  scope: AbstractContextManager[Any] | None = None) -> MLPBatch:
    """The first ``n_tokens`` (at most) MLP input/output pairs of ``contexts`` (for init and evaluation)."""
    xs, ys, got = [], [], 0
    for i in range(0, contexts.shape[0], model_batch_size):
        b = mlp_io(lm, contexts[i:i + model_batch_size], layers, scope)
        xs.append(b.x)
        ys.append(b.y)
        got += b.x.shape[0]
        if got >= n_tokens:
            break
    return MLPBatch(torch.cat(xs)[:n_tokens], torch.cat(ys)[:n_tokens])


class MLPStream(IterableDataset):
    """Yields ``MLPBatch``es of ``batch_size`` tokens until ``n_tokens`` have been served (passes over the
    contexts repeat as needed)."""

    def __init__(self, lm: LoadedModel, contexts: Tensor, layers: list[int], *, n_tokens: int, batch_size: int,
                 model_batch_size: int = 8, buffer_tokens: int = 4096, seed: int = 0,
                 scope: AbstractContextManager[Any] | None = None) -> None:
        if contexts.ndim != 2 or contexts.shape[0] < 1 or contexts.shape[1] < 2:
            raise ValueError("need contexts [n_ctx >= 1, ctx >= 2]")
        self.lm, self.contexts, self.layers = lm, contexts, list(layers)
        self.n_tokens, self.batch_size = n_tokens, batch_size
        self.model_batch_size, self.buffer_tokens = model_batch_size, max(buffer_tokens, batch_size)
        self.seed, self.scope = seed, scope
        self.tokens_read = 0
        """Token pairs produced by the model so far."""
        self.passes = 0
        """Passes over the contexts started so far."""

    def _chunks(self, gen: torch.Generator) -> Iterator[MLPBatch]:
        n = self.contexts.shape[0]
        while True:
            self.passes += 1
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, self.model_batch_size):
                b = mlp_io(self.lm, self.contexts[order[i:i + self.model_batch_size]], self.layers, self.scope)
                self.tokens_read += b.x.shape[0]
                yield b

    def __iter__(self) -> Iterator[MLPBatch]:
        gen = torch.Generator().manual_seed(self.seed)
        xs: list[Tensor] = []
        ys: list[Tensor] = []
        held, served = 0, 0
        for chunk in self._chunks(gen):
            xs.append(chunk.x)
            ys.append(chunk.y)
            held += chunk.x.shape[0]
            if held < self.buffer_tokens:
                continue
            x, y = torch.cat(xs), torch.cat(ys)
            perm = torch.randperm(x.shape[0], generator=gen)
            x, y = x[perm], y[perm]
            n_full = x.shape[0] // self.batch_size
            for j in range(n_full):
                sl = slice(j * self.batch_size, (j + 1) * self.batch_size)
                yield MLPBatch(x[sl], y[sl])
                served += self.batch_size
                if served + self.batch_size > self.n_tokens:
                    return
            rest = slice(n_full * self.batch_size, None)
            xs, ys, held = [x[rest]], [y[rest]], x.shape[0] - n_full * self.batch_size
