"""Shuffled activation batches from packed contexts: an interrupted run resumed from its stored state
trains on exactly the batches of an uninterrupted one (tiny model), every batch has the full size (batches
continue across blocks), no row is dropped or served twice, and a short corpus is a clear error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interpretability_workbench.activations.packing import ContextPacker
from interpretability_workbench.activations.sources import CorpusExhausted, SourceError, open_source
from interpretability_workbench.activations.store import iter_activations
from interpretability_workbench.activations.stream import PackedBlocks, ShuffledBlocks, StreamState, context_digest

from .conftest import write_jsonl

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture
def corpus(tmp_path: Path, docs: list[str]) -> Path:
    return write_jsonl(tmp_path / "c.jsonl.zst", docs)


def token_rows(contexts: torch.Tensor) -> torch.Tensor:
    """An encoder whose rows can be traced back to the contexts: each row is one (non-sink) token id."""
    return contexts[:, 1:].reshape(-1, 1)  # [n_tokens 1]


def test_resume_trains_on_exactly_the_uninterrupted_batches(corpus: Path, tok, tiny_lm) -> None:
    def encode(ctx: torch.Tensor) -> torch.Tensor:  # [n ctx] -> [n*(ctx-1) d_model]
        return torch.cat([a[HOOK] for a in iter_activations(tiny_lm, ctx, [HOOK], batch_size=4)])

    def stream(state: StreamState | None = None) -> ShuffledBlocks:
        packer = ContextPacker(open_source(corpus), tok, 16, held_out_contexts=2)
        return ShuffledBlocks(PackedBlocks(packer, encode, block_contexts=6), batch_size=40, seed=3, max_rows=400,
                              state=state)

    whole = list(stream())
    assert sum(b.shape[0] for b in whole) == 400
    assert all(b.shape[0] == 40 for b in whole)  # 6 contexts x 15 rows = 90 rows a block; batch 3 spans two
    for cut in (2, 3, 9):  # mid-block, a batch spanning two blocks, the exact end of block 4
        first = stream()
        done = []
        for b in first:
            done.append(b)
            if len(done) == cut:
                break
        saved = json.loads(json.dumps(first.state.to_dict()))  # the server is killed here
        rest = list(stream(StreamState.from_dict(saved)))
        got = done + rest
        assert len(got) == len(whole), cut
        assert all(torch.equal(a, b) for a, b in zip(got, whole)), cut


def test_every_row_of_a_block_is_served_once(corpus: Path, tok) -> None:
    packer = ContextPacker(open_source(corpus), tok, 24, held_out_contexts=1)
    contexts = ContextPacker(open_source(corpus), tok, 24, held_out_contexts=1).take(5 * 8)
    s = ShuffledBlocks(PackedBlocks(packer, token_rows, block_contexts=8), batch_size=50, seed=0,
                       max_rows=5 * 8 * 23)
    batches = list(s)
    assert [b.shape[0] for b in batches] == [50] * 18 + [20]  # 920 rows: full batches across block ends
    served = torch.cat(batches).flatten()
    assert torch.equal(served.sort().values, contexts[:, 1:].flatten().sort().values)
    block0 = contexts[:8, 1:].flatten()  # 8 x 23 = 184 rows
    assert not torch.equal(served[:184], block0)  # shuffled...
    assert torch.equal(served[:184].sort().values, block0.sort().values)  # ...within the block
    assert s.state.rows == 5 * 8 * 23 and s.state.block == 5 and s.state.offset == 0
    pos = s.state.block_start
    assert pos["contexts"] == 40 and int(pos["digest"], 16) == context_digest(contexts)
    assert context_digest(contexts.flip(0)) == context_digest(contexts)  # order-independent


def test_ranks_split_each_block(corpus: Path, tok) -> None:
    def rows(rank: int, world: int) -> torch.Tensor:
        packer = ContextPacker(open_source(corpus), tok, 24)
        s = ShuffledBlocks(PackedBlocks(packer, token_rows, block_contexts=8, rank=rank, world=world),
                           batch_size=25, max_rows=3 * 8 * 23 // world)
        return torch.cat(list(s)).flatten()

    single = rows(0, 1).sort().values
    assert torch.equal(torch.cat([rows(0, 2), rows(1, 2)]).sort().values, single)
    with pytest.raises(ValueError, match="split evenly across 3 processes"):
        PackedBlocks(ContextPacker(open_source(corpus), tok, 24), token_rows, block_contexts=8, rank=0, world=3)


def test_short_corpus_is_a_clear_error(corpus: Path, docs: list[str], tok) -> None:
    from interpretability_workbench.activations.corpus import make_contexts

    n = make_contexts(tok, docs, 32).shape[0]
    too_many = (n + 1) * 31
    def blocks(epochs: int | None = 1) -> PackedBlocks:
        return PackedBlocks(ContextPacker(open_source(corpus), tok, 32, epochs=epochs), token_rows, block_contexts=7)

    s = ShuffledBlocks(blocks(), batch_size=64, max_rows=too_many)
    with pytest.raises(CorpusExhausted, match=f"ran out after {n * 31} activation rows of the {too_many} asked"):
        list(s)
    # without a budget, one pass ends the stream cleanly, every context served
    s = ShuffledBlocks(blocks(), batch_size=64)
    assert sum(b.shape[0] for b in s) == n * 31
    # with epochs the same budget is met by repeating the corpus
    r = blocks(2)
    s = ShuffledBlocks(r, batch_size=64, max_rows=too_many)
    assert sum(b.shape[0] for b in s) == too_many and r.packer.state.epoch == 1
    with pytest.raises(SourceError, match="give max_rows"):
        ShuffledBlocks(blocks(None), batch_size=64, unbounded=True)
