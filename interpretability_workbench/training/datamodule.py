"""The activation stream as a Lightning DataModule: the model's activations at every trained hook from
one forward per batch of contexts (or a recorded Parquet trace), shuffled across contexts, concatenated
per token as ``[batch n_hooks*d_in]``, and cut at the run's token budget."""
from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Iterator

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from ..activations.store import ShuffleBuffer, iter_activations, read_trace
from ..model.loader import LoadedModel
from .config import TrainingConfig


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ActivationStream(IterableDataset):
    """Yields ``[batch_size n_hooks*d_in]`` float32 CPU batches until ``n_tokens`` have been served.

    ``n_tokens`` and ``skip_tokens`` (resume) count global tokens. With several processes (DDP) each rank
    reads its own slice of the contexts (or trace rows) and serves ``batch_size / world_size`` activations per
    step, so all ranks together take ``batch_size`` per optimiser step. ``tokens_read`` counts activations
    produced so far by all processes (this rank's count times the world size).
    """

    def __init__(self, cfg: TrainingConfig, *, lm: LoadedModel | None, contexts: Tensor | None,
                 n_tokens: int, skip_tokens: int = 0, lock: threading.RLock | None = None) -> None:
        self.cfg, self.lm, self.contexts = cfg, lm, contexts
        self.n_tokens, self.skip_tokens = n_tokens, skip_tokens
        self.lock = lock
        self.tokens_read = 0

    def _model_chunks(self) -> Iterator[Tensor]:
        assert self.lm is not None and self.contexts is not None
        rank, world = _rank_world()
        ctx = self.contexts[rank::world]
        per_ctx = ctx.shape[1] - 1
        start = (self.skip_tokens // world // max(1, per_ctx)) % ctx.shape[0]
        ctx = torch.cat([ctx[start:], ctx[:start]])
        while True:  # epochs over the train split until the budget is met
            it = iter_activations(self.lm, ctx, self.cfg.hook_names, batch_size=self.cfg.model_batch_size,
                                  exclude_first=True)
            while True:
                with self.lock or nullcontext():
                    try:
                        acts = next(it)
                    except StopIteration:
                        break
                chunk = torch.cat([acts[h] for h in self.cfg.hook_names], dim=1).cpu()
                self.tokens_read += chunk.shape[0] * world
                yield chunk

    def _trace_chunks(self) -> Iterator[Tensor]:
        assert self.cfg.trace_dir
        rank, world = _rank_world()
        skip = self.skip_tokens // world
        while True:
            got = False
            for chunk in read_trace(self.cfg.trace_dir, chunk_tokens=max(4096, self.cfg.batch_size)):
                chunk = chunk[rank::world]  # [n_tokens d_in] this rank's rows
                got = got or chunk.shape[0] > 0
                if skip >= chunk.shape[0]:
                    skip -= chunk.shape[0]
                    continue
                chunk, skip = chunk[skip:], 0
                self.tokens_read += chunk.shape[0] * world
                yield chunk
            if not got:
                return

    def __iter__(self) -> Iterator[Tensor]:
        rank, world = _rank_world()
        if self.cfg.batch_size % world:
            raise ValueError(f"batch_size ({self.cfg.batch_size}) is the global batch and must split evenly "
                             f"across {world} processes; pick a multiple of {world}")
        batch_size, n_tokens = self.cfg.batch_size // world, self.n_tokens // world  # this rank's share
        source = self._trace_chunks() if self.cfg.trace_dir else self._model_chunks()
        buf = ShuffleBuffer(source, buffer_tokens=self.cfg.buffer_tokens, batch_size=batch_size,
                            seed=self.cfg.seed + self.skip_tokens + rank)
        served = 0
        for batch in buf:  # [batch_size n_hooks*d_in]
            if served + batch.shape[0] > n_tokens or batch.shape[0] < batch_size:
                break
            served += batch.shape[0]
            yield batch
            if served >= n_tokens:
                break


class ActivationDataModule(pl.LightningDataModule):
    def __init__(self, stream: ActivationStream) -> None:
        super().__init__()
        self.stream = stream

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.stream, batch_size=None, num_workers=0)
