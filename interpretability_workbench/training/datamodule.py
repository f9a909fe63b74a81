"""The activation stream as a Lightning DataModule: fixed-size shuffled batches ``[batch n_hooks*d_in]`` from
``activations.stream.ShuffledBlocks`` over a block reader (packed corpus contexts through one model forward
per batch, or a recorded trace), cut at the run's budget.

Lightning's data fetcher reads a batch ahead of the step that trains it, so the stream keeps the read
position after every batch it yields and ``state_after(n)`` gives the position after the n-th *trained*
batch: that is what a checkpoint stores, so a resumed run neither skips nor repeats a batch."""
from __future__ import annotations

from typing import Callable, Iterator

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from ..activations.stream import BlockReader, ShuffledBlocks, StreamState
from .config import TrainingConfig


def rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


ReaderFactory = Callable[[int, int], BlockReader]
"""``(rank, world) -> BlockReader`` positioned where the run's training data starts."""


class ActivationStream(IterableDataset):
    """Yields ``[batch_size / world_size, n_hooks*d_in]`` float32 CPU batches of this process until the run's
    ``train_rows`` (all processes together) were served, starting from ``state`` (a resumed run) or the
    reader's start.

    With several processes (DDP) each rank reads its share of every block and serves
    ``batch_size / world_size`` rows per step, so all ranks together take ``batch_size`` per optimiser step.
    """

    def __init__(self, cfg: TrainingConfig, reader: ReaderFactory, *, state: StreamState) -> None:
        self.cfg, self.reader, self.start_state = cfg, reader, state
        self.blocks: ShuffledBlocks | None = None
        self._states: dict[int, StreamState] = {}

    def state_after(self, trained: int) -> StreamState:
        """The read position after the ``trained``-th batch of this fit (the start state for 0)."""
        if trained <= 0:
            return self.start_state
        for k in [k for k in self._states if k < trained - 1]:
            del self._states[k]
        return self._states[trained - 1]

    def __iter__(self) -> Iterator[Tensor]:
        rank, world = rank_world()
        if self.cfg.batch_size % world:
            raise ValueError(f"batch_size ({self.cfg.batch_size}) is the global batch and must split evenly "
                             f"across {world} processes; pick a multiple of {world}")
        self.blocks = ShuffledBlocks(self.reader(rank, world), batch_size=self.cfg.batch_size // world,
                                     seed=self.cfg.seed, max_rows=self.cfg.train_rows // world,
                                     state=self.start_state, unbounded=self.cfg.epochs is None)
        self._states = {}
        for i, batch in enumerate(self.blocks):  # [batch_size/world n_hooks*d_in]
            self._states[i] = self.blocks.state
            yield batch


class ActivationDataModule(pl.LightningDataModule):
    def __init__(self, stream: ActivationStream) -> None:
        super().__init__()
        self.stream = stream

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.stream, batch_size=None, num_workers=0)
