"""A run's data, streamed: the held-out slice, the training stream's block reader and start position, the
sample that initialises the SAEs, and the up-front check of the budget against a counted corpus.

Documents are read, tokenised and packed lazily in a fixed order (``activations.packing.ContextPacker``);
the first ``cfg.held_out_contexts`` contexts are the held-out slice, never trained on, and training starts at
the document boundary after it. Blocks of ``buffer_tokens`` activations (whole contexts) go through one
model forward per ``model_batch_size`` contexts, under the run's model scope. A trace run reads its rows
from the trace instead and still evaluates on the corpus's held-out slice.
"""
from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..activations.packing import ContextPacker, PackerState
from ..activations.source_types import SourceSpec
from ..activations.sources import open_source
from ..activations.store import iter_activations, read_manifest, read_trace_rows
from ..activations.stream import PackedBlocks, StreamState, TraceBlocks
from ..errors import Invalid
from ..model.loader import LoadedModel
from .config import TrainingConfig
from .datamodule import ReaderFactory
from .progress import Progress


class Encoder:
    """Contexts ``[n ctx]`` -> activation rows ``[n*(ctx-1) n_hooks*d_in]`` (position 0 dropped), one model
    forward per ``batch_size`` contexts under ``scope``; reports each forward to ``progress``."""

    def __init__(self, lm: LoadedModel, hook_names: list[str], batch_size: int, scope: AbstractContextManager[Any],
                 progress: Progress | None = None) -> None:
        self.lm, self.hook_names, self.batch_size, self.scope = lm, hook_names, batch_size, scope
        self.progress = progress
        self.rows = 0
        """Rows produced so far by this process."""

    def __call__(self, contexts: Tensor, *, fill: bool = True) -> Tensor:
        n = contexts.shape[0]
        p = self.progress if fill else None
        if p is not None:
            p.begin_fill(n)
        out = []
        try:
            for i in range(0, n, self.batch_size):
                t0 = time.perf_counter()
                with self.scope:
                    acts = next(iter_activations(self.lm, contexts[i: i + self.batch_size], self.hook_names,
                                                 batch_size=self.batch_size, exclude_first=True))
                chunk = torch.cat([acts[h] for h in self.hook_names], dim=1).cpu()  # [m*(ctx-1) n_hooks*d]
                out.append(chunk)
                self.rows += chunk.shape[0]
                if self.progress is not None:
                    self.progress.forward_done(int(contexts[i: i + self.batch_size].numel()), time.perf_counter() - t0)
                if p is not None:
                    p.advance(min(n, i + self.batch_size))
        finally:
            if p is not None:
                p.end_fill()
        return torch.cat(out)


def open_packer(cfg: TrainingConfig, lm: LoadedModel, spec: SourceSpec, state: PackerState | None = None) -> ContextPacker:
    return ContextPacker(open_source(spec), lm.tokenizer, cfg.context_size, held_out_contexts=cfg.held_out_contexts,
                         epochs=cfg.epochs, state=state)


def block_contexts(cfg: TrainingConfig, world: int) -> int:
    """Contexts per shuffle block: ``buffer_tokens`` rows rounded up to whole contexts and to the processes."""
    n = math.ceil(cfg.buffer_tokens / (cfg.context_size - 1))
    return -(-n // world) * world


class RunData(NamedTuple):
    held_out: Tensor
    """``[held_out_contexts ctx]`` the held-out slice (never trained on)."""
    reader: ReaderFactory
    """``(rank, world) -> BlockReader`` of the training data."""
    start: StreamState
    """Where the training stream of a new run starts."""
    trace_rows: int | None
    """Rows of the trace (trace runs)."""


def prepare(cfg: TrainingConfig, lm: LoadedModel, spec: SourceSpec, encoder: Encoder,
            progress: Progress | None = None) -> RunData:
    """Read the held-out slice and set up the training stream (nothing else is read yet)."""
    if progress is not None:
        progress.phase("preparing", cfg.held_out_contexts, "contexts")
    packer = open_packer(cfg, lm, spec)
    held = packer.held_out()
    if progress is not None:
        progress.advance(held.contexts.shape[0])
    first = packer.state  # at the document boundary after the held-out slice
    if cfg.trace_dir:
        trace_dir = cfg.trace_dir
        man = read_manifest(trace_dir)
        if man.hook_name != cfg.hook_names[0] or man.d_model != lm.d_model:
            raise Invalid(f"trace {trace_dir} holds {man.hook_name} (d_model {man.d_model}); "
                          f"asked for {cfg.hook_names[0]} (d_model {lm.d_model})")

        def trace_reader(rank: int, world: int) -> TraceBlocks:
            rows = -(-cfg.buffer_tokens // world) * world
            return TraceBlocks(trace_dir, man.n_tokens, lambda s, n: read_trace_rows(trace_dir, s, n, manifest=man),
                               block_rows=rows, epochs=cfg.epochs, rank=rank, world=world)
        return RunData(held.contexts, trace_reader, StreamState({"trace_row": 0, "epoch": 0}, 0, 0, 0), man.n_tokens)

    def packed_reader(rank: int, world: int) -> PackedBlocks:
        return PackedBlocks(open_packer(cfg, lm, spec, first), encoder, block_contexts=block_contexts(cfg, world),
                            rank=rank, world=world)
    start = StreamState({"packer": first.to_dict(), "contexts": 0, "digest": "0" * 16}, 0, 0, 0)
    return RunData(held.contexts, packed_reader, start, None)


def init_sample(cfg: TrainingConfig, lm: LoadedModel, spec: SourceSpec, data: RunData,
                encoder: Encoder) -> dict[str, Tensor]:
    """The first ``min(batch_size, 4096)`` training activations per hook, in reading order (they set each
    SAE's input scale and b_dec): the same rows for a sweep and for each of its members alone."""
    n = min(cfg.batch_size, 4096)
    if cfg.trace_dir:
        return {cfg.hook_names[0]: read_trace_rows(cfg.trace_dir, 0, n)}
    packer = open_packer(cfg, lm, spec, PackerState.from_dict(data.start.block_start["packer"]))
    rows = encoder(packer.take_upto(math.ceil(n / (cfg.context_size - 1))), fill=False)[:n]
    d = lm.d_model
    return {h: rows[:, i * d: (i + 1) * d] for i, h in enumerate(cfg.hook_names)}
