"""Packed contexts -> activation rows -> shuffled training batches, resumable exactly.

``ShuffledBlocks`` reads ``block_contexts`` contexts at a time from a ``ContextPacker``, turns them into
activation rows with ``encode`` (e.g. one forward of the model, position 0 dropped), permutes the rows of
that block with a generator seeded by (seed, block index) and serves them ``batch_size`` at a time; the
last batch of a block may be smaller, so no row is dropped and none is served twice.

``StreamState`` is what a checkpoint stores: the packer state where the current block began, the block
index and how many of its batches were served. Resuming re-reads that block (the same contexts, hence the
same rows when ``encode`` is deterministic), re-draws the same permutation and skips the served batches,
so an interrupted run trains on exactly the batches of an uninterrupted one. Unlike a rolling buffer
(``store.ShuffleBuffer``), nothing carries from one block to the next, which is what makes this exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from .packing import ContextPacker, PackerState
from .source_types import CorpusExhausted, SourceError


@dataclass(frozen=True)
class StreamState:
    """Where a ``ShuffledBlocks`` stream stands (a small JSON object for checkpoints)."""

    block_start: PackerState
    """The packer state where the current block begins."""
    block: int
    """Index of the current block (seeds its permutation)."""
    served: int
    """Batches of the current block already served."""
    rows: int
    """Activation rows served by this process so far (all blocks)."""

    def __post_init__(self) -> None:
        if self.block < 0 or self.served < 0 or self.rows < 0:
            raise ValueError("StreamState counters must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {"block_start": self.block_start.to_dict(), "block": self.block, "served": self.served,
                "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamState:
        try:
            return cls(PackerState.from_dict(d["block_start"]), int(d["block"]), int(d["served"]), int(d["rows"]))
        except (KeyError, TypeError, ValueError) as e:
            raise SourceError(f"the stored stream state is unreadable ({e}); "
                              "restart the run without resuming") from None


class ShuffledBlocks:
    """Iterate ``[<= batch_size d]`` activation batches until ``max_rows`` rows were served (the last batch
    is cut to the budget; ``CorpusExhausted`` if the packer runs out first) or, with ``max_rows`` None,
    until the packer's allowed passes end.

    With several processes, each takes ``contexts[rank::world]`` of every block (``block_contexts`` must
    split evenly) and serves its own ``batch_size`` rows per step; ``max_rows`` is then this rank's share.
    """

    def __init__(self, packer: ContextPacker, encode: Callable[[Tensor], Tensor], *, block_contexts: int,
                 batch_size: int, seed: int = 0, max_rows: int | None = None, state: StreamState | None = None,
                 rank: int = 0, world: int = 1) -> None:
        if block_contexts < 1 or batch_size < 1:
            raise ValueError("block_contexts and batch_size must be at least 1")
        if world < 1 or not 0 <= rank < world or block_contexts % world:
            raise ValueError(f"block_contexts ({block_contexts}) must split evenly across {world} processes "
                             f"and rank must be in [0, {world})")
        if packer.epochs is None and max_rows is None:
            raise SourceError("give max_rows when the corpus repeats without end (epochs=None)")
        self.packer, self.encode = packer, encode
        self.block_contexts, self.batch_size, self.seed = block_contexts, batch_size, seed
        self.max_rows, self.rank, self.world = max_rows, rank, world
        if state is not None:
            packer.restore(state.block_start)
        self._state = state or StreamState(packer.state, 0, 0, 0)

    @property
    def state(self) -> StreamState:
        """The state after the last batch served."""
        return self._state

    def _block(self) -> Tensor:
        contexts = self.packer.take_upto(self.block_contexts)  # [n ctx]
        if contexts.shape[0] == 0:
            return contexts
        rows = self.encode(contexts[self.rank:: self.world])  # [n_rows d]
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._state.block)
        return rows[torch.randperm(rows.shape[0], generator=gen).to(rows.device)]

    def __iter__(self) -> Iterator[Tensor]:
        st = self._state
        self.packer.restore(st.block_start)
        skip = st.served
        while self.max_rows is None or st.rows < self.max_rows:
            rows = self._block()
            if rows.shape[0] == 0:
                if self.max_rows is not None:
                    raise CorpusExhausted(f"the corpus ran out after {st.rows} activation rows of the "
                                          f"{self.max_rows} asked for; allow more epochs, lower the token budget, "
                                          "or use a larger corpus")
                return
            n_batches = -(-rows.shape[0] // self.batch_size)
            for j in range(skip, n_batches):
                batch = rows[j * self.batch_size: (j + 1) * self.batch_size]  # [<= batch_size d]
                if self.max_rows is not None:
                    batch = batch[: self.max_rows - st.rows]
                done = j + 1 == n_batches
                st = StreamState(self.packer.state if done else st.block_start, st.block + 1 if done else st.block,
                                 0 if done else j + 1, st.rows + batch.shape[0])
                self._state = st
                yield batch
                if self.max_rows is not None and st.rows >= self.max_rows:
                    return
            skip = 0
