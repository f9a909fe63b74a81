"""Blocks of activation rows -> shuffled training batches of a fixed size, resumable exactly.

A ``BlockReader`` produces the rows in a fixed order, one block at a time, and says where each block
starts (a small JSON object). Two readers: ``PackedBlocks`` reads ``block_contexts`` contexts from a
``ContextPacker`` and turns them into rows with ``encode`` (one forward of the model, position 0 dropped);
``TraceBlocks`` reads rows of a recorded Parquet trace. ``ShuffledBlocks`` permutes the rows of each block
with a generator seeded by (seed, block index) and serves the permuted blocks as one continuous stream cut
into ``batch_size`` rows: a batch that reaches the end of a block continues with the start of the next, so
every batch but the stream's last has exactly ``batch_size`` rows, no row is dropped and none is served
twice.

``StreamState`` is what a checkpoint stores: where the current block starts, its index, how many of its
rows were served and the rows served in all. Resuming re-reads that block (the same contexts, hence the
same rows when ``encode`` is deterministic), re-draws the same permutation and skips the served rows, so
an interrupted run trains on exactly the batches of an uninterrupted one. Unlike a rolling buffer
(``store.ShuffleBuffer``), nothing carries from one block to the next, which is what makes this exact.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor

from .packing import ContextPacker, PackerState
from .source_types import CorpusExhausted, SourceError

_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class StreamState:
    """Where a ``ShuffledBlocks`` stream stands (a small JSON object for checkpoints)."""

    block_start: dict[str, Any]
    """Where the current block starts (the reader's ``tell()``)."""
    block: int
    """Index of the current block (seeds its permutation)."""
    offset: int
    """Rows of the current block already served (by this process)."""
    rows: int
    """Activation rows served by this process so far (all blocks)."""

    def __post_init__(self) -> None:
        if self.block < 0 or self.offset < 0 or self.rows < 0:
            raise ValueError("StreamState counters must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {"block_start": self.block_start, "block": self.block, "offset": self.offset, "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamState:
        try:
            return cls(dict(d["block_start"]), int(d["block"]), int(d["offset"]), int(d["rows"]))
        except (KeyError, TypeError, ValueError) as e:
            raise SourceError(f"the stored stream state is unreadable ({e}); "
                              "restart the run without resuming") from None


class BlockReader(Protocol):
    """Rows in a fixed order, a block at a time."""

    def tell(self) -> dict[str, Any]:
        """Where the next block starts (JSON-serialisable)."""

    def seek(self, where: dict[str, Any]) -> None:
        """Continue from a position ``tell`` returned."""

    def read_block(self) -> Tensor:
        """The next block's rows of this process ``[n d]`` (unshuffled); empty when the data ended."""


def context_digest(contexts: Tensor) -> int:
    """Sum over contexts (mod 2^64) of a 64-bit hash of each context's token ids: an order-independent
    digest of a set of contexts that can be added to block by block."""
    arr = np.ascontiguousarray(contexts.to(torch.int64).cpu().numpy())
    return sum(int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
               for row in arr) & _MASK


class PackedBlocks:
    """``block_contexts`` packed contexts at a time, encoded to rows by ``encode``. With several processes
    each takes ``contexts[rank::world]`` of every block (``block_contexts`` must split evenly; a last,
    shorter block is cut to a multiple of ``world``). The position also carries the count and digest of the
    contexts read before it (``context_digest``), so a run can report which contexts it trained on."""

    def __init__(self, packer: ContextPacker, encode: Callable[[Tensor], Tensor], *, block_contexts: int,
                 rank: int = 0, world: int = 1) -> None:
        if block_contexts < 1:
            raise ValueError("block_contexts must be at least 1")
        if world < 1 or not 0 <= rank < world or block_contexts % world:
            raise ValueError(f"block_contexts ({block_contexts}) must split evenly across {world} processes "
                             f"and rank must be in [0, {world})")
        self.packer, self.encode = packer, encode
        self.block_contexts, self.rank, self.world = block_contexts, rank, world
        self.contexts, self.digest = 0, 0

    def tell(self) -> dict[str, Any]:
        return {"packer": self.packer.state.to_dict(), "contexts": self.contexts, "digest": f"{self.digest:016x}"}

    def seek(self, where: dict[str, Any]) -> None:
        if "packer" not in where:
            raise SourceError("the stored read position is not a corpus position (was the run trained from a "
                              "trace?); resume it with the same data source")
        self.packer.restore(PackerState.from_dict(where["packer"]))
        self.contexts, self.digest = int(where.get("contexts", 0)), int(str(where.get("digest", "0")), 16)

    def read_block(self) -> Tensor:
        contexts = self.packer.take_upto(self.block_contexts)  # [n ctx]
        contexts = contexts[: contexts.shape[0] - contexts.shape[0] % self.world]
        if contexts.shape[0] == 0:
            return contexts
        self.contexts += contexts.shape[0]
        self.digest = (self.digest + context_digest(contexts)) & _MASK
        return self.encode(contexts[self.rank:: self.world])  # [n_rows d]


class TraceBlocks:
    """``block_rows`` rows at a time from a recorded trace (``store.read_trace_rows``), in trace order,
    restarting at row 0 for each further pass while ``epochs`` allows (None: without limit)."""

    def __init__(self, trace_dir: str, n_rows: int, read: Callable[[int, int], Tensor], *, block_rows: int,
                 epochs: int | None = 1, rank: int = 0, world: int = 1) -> None:
        if block_rows < 1 or block_rows % world:
            raise ValueError(f"block_rows ({block_rows}) must be positive and split evenly across {world} processes")
        if n_rows < world:
            raise SourceError(f"trace {trace_dir} holds {n_rows} rows; record a longer trace")
        self.trace_dir, self.n_rows, self.read = trace_dir, n_rows, read
        self.block_rows, self.epochs, self.rank, self.world = block_rows, epochs, rank, world
        self.row, self.epoch = 0, 0

    def tell(self) -> dict[str, Any]:
        return {"trace_row": self.row, "epoch": self.epoch}

    def seek(self, where: dict[str, Any]) -> None:
        if "trace_row" not in where:
            raise SourceError("the stored read position is not a trace position (was the run trained from a "
                              "corpus?); resume it with the same data source")
        self.row, self.epoch = int(where["trace_row"]), int(where.get("epoch", 0))

    def read_block(self) -> Tensor:
        parts, want = [], self.block_rows
        while want > 0:
            if self.row >= self.n_rows:
                if self.epochs is not None and self.epoch + 1 >= self.epochs:
                    break
                self.row, self.epoch = 0, self.epoch + 1
            n = min(want, self.n_rows - self.row)
            parts.append(self.read(self.row, n))  # [n d]
            self.row += n
            want -= n
        if not parts:
            return torch.empty(0, 0)
        rows = torch.cat(parts)
        rows = rows[: rows.shape[0] - rows.shape[0] % self.world]
        return rows[self.rank:: self.world]


class ShuffledBlocks:
    """Iterate ``[batch_size d]`` activation batches until ``max_rows`` rows were served (the last batch is
    cut to the budget; ``CorpusExhausted`` if the reader runs out first) or, with ``max_rows`` None, until
    the reader ends (the last batch may then be smaller). With several processes, ``max_rows`` and
    ``batch_size`` are this process's share and the reader gives this process's rows."""

    def __init__(self, reader: BlockReader, *, batch_size: int, seed: int = 0, max_rows: int | None = None,
                 state: StreamState | None = None, unbounded: bool = False) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if unbounded and max_rows is None:
            raise SourceError("give max_rows when the data repeats without end (epochs=None)")
        self.reader, self.batch_size, self.seed, self.max_rows = reader, batch_size, seed, max_rows
        self._state = state or StreamState(reader.tell(), 0, 0, 0)

    @property
    def state(self) -> StreamState:
        """The state after the last batch served."""
        return self._state

    def _permuted(self, block: int) -> Tensor:
        rows = self.reader.read_block()  # [n d]
        if rows.shape[0] == 0:
            return rows
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + block)
        return rows[torch.randperm(rows.shape[0], generator=gen).to(rows.device)]

    def __iter__(self) -> Iterator[Tensor]:
        st = self._state
        self.reader.seek(st.block_start)
        block, start, pos, served = st.block, st.block_start, st.offset, st.rows
        rows = self._permuted(block)
        while self.max_rows is None or served < self.max_rows:
            want = self.batch_size if self.max_rows is None else min(self.batch_size, self.max_rows - served)
            parts: list[Tensor] = []
            while want > 0:
                if pos >= rows.shape[0]:
                    start, block, pos = self.reader.tell(), block + 1, 0
                    rows = self._permuted(block)
                    if rows.shape[0] == 0:
                        break
                take = min(want, rows.shape[0] - pos)
                parts.append(rows[pos: pos + take])
                pos, want = pos + take, want - take
            if want > 0 and self.max_rows is not None:
                raise CorpusExhausted(f"the data ran out after {served + sum(p.shape[0] for p in parts)} "
                                      f"activation rows of the {self.max_rows} asked for; allow more epochs, "
                                      "lower the token budget, or use a larger corpus")
            if not parts:
                return
            batch = parts[0] if len(parts) == 1 else torch.cat(parts)  # [<= batch_size d]
            served += batch.shape[0]
            if pos >= rows.shape[0]:  # the block is used up: the state points at the next one (no re-read)
                self._state = StreamState(self.reader.tell(), block + 1, 0, served)
            else:
                self._state = StreamState(start, block, pos, served)
            yield batch
            if want > 0:
                return
