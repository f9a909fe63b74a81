"""The lazy context packer: the same contexts as ``make_contexts``, exact resume from a stored state, a
held-out slice training never reads, epochs, and exact accounting."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interpretability_workbench.activations.corpus import make_contexts
from interpretability_workbench.activations.packing import ContextPacker, PackerState
from interpretability_workbench.activations.sources import CorpusExhausted, SourceError, open_source

from .conftest import write_jsonl


@pytest.fixture
def corpus(tmp_path: Path, docs: list[str]) -> Path:
    return write_jsonl(tmp_path / "c.jsonl.gz", docs)


def tokenizer_variant(tok, kind: str):
    """The tiny tokenizer as is (BOS and EOS), without BOS, or without either."""
    from transformers import PreTrainedTokenizerFast

    if kind == "bos+eos":
        return tok
    t = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer,
                                eos_token=None if kind == "none" else "<|endoftext|>")
    assert t.bos_token_id is None and (t.eos_token_id is None) == (kind == "none")
    return t


def all_contexts(packer: ContextPacker, batch: int = 5) -> torch.Tensor:
    return torch.cat(list(packer.batches(batch)))


@pytest.mark.parametrize("kind", ["bos+eos", "eos", "none"])
@pytest.mark.parametrize("size", [2, 17, 64])
def test_one_pass_equals_make_contexts(kind: str, size: int, corpus: Path, docs: list[str], tok) -> None:
    t = tokenizer_variant(tok, kind)
    got = all_contexts(ContextPacker(open_source(corpus), t, size, tokenize_batch=3))
    want = make_contexts(t, docs, size)
    assert got.dtype == torch.long and got.shape == want.shape
    assert torch.equal(got, want)


@pytest.mark.parametrize("held_out", [0, 3])
def test_state_round_trip_continues_exactly(held_out: int, corpus: Path, tok) -> None:
    size = 24
    ref = ContextPacker(open_source(corpus), tok, size, held_out_contexts=held_out)
    whole = ref.take(60)
    for n in (1, 7, 13, 29, 59):  # some cuts land mid-document, some right after one
        p = ContextPacker(open_source(corpus), tok, size, held_out_contexts=held_out, tokenize_batch=5)
        first = p.take(n)
        saved = json.dumps(p.state.to_dict())
        fresh = ContextPacker(open_source(corpus), tok, size, held_out_contexts=held_out,
                              state=PackerState.from_dict(json.loads(saved)))
        rest = fresh.take(60 - n)
        assert torch.equal(torch.cat([first, rest]), whole), n
        assert fresh.state == ref.state  # same position, offset and counters as the uninterrupted run


def test_batches_report_state_after_each_batch(corpus: Path, tok) -> None:
    p = ContextPacker(open_source(corpus), tok, 32)
    states, seen = [], []
    for b in p.batches(4, limit=18):
        seen.append(b)
        states.append(p.state)
    assert [b.shape[0] for b in seen] == [4, 4, 4, 4, 2]
    whole = torch.cat(seen)
    for i, st in enumerate(states[:-1]):  # resume after batch i == the rest of the stream
        rest = ContextPacker(open_source(corpus), tok, 32, state=st).take(18 - st.contexts)
        assert torch.equal(rest, whole[st.contexts:]), i


def test_held_out_slice_is_never_trained_on(corpus: Path, docs: list[str], tok) -> None:
    size, h = 20, 4
    p = ContextPacker(open_source(corpus), tok, size, held_out_contexts=h, epochs=3)
    held = p.held_out().contexts
    assert torch.equal(held, make_contexts(tok, docs, size)[:h])
    # independent reckoning: the held-out slice ends inside document j; training starts with document j + 1
    body = size - 1
    lengths = [len(tok(d, add_special_tokens=False)["input_ids"]) + 1 for d in docs]
    total, j = 0, 0
    while total + lengths[j] < h * body:
        total += lengths[j]
        j += 1
    train_docs = docs[j + 1:]
    train = all_contexts(p)
    assert torch.equal(train, make_contexts(tok, train_docs * 3, size))  # three passes over the same docs
    assert p.state.epoch == 2 and p.report().train_contexts == train.shape[0]  # last context: in pass 3
    held_rows = {tuple(r.tolist()) for r in held}
    assert not any(tuple(r.tolist()) in held_rows for r in train)
    # the documents of the held-out slice never appear in training contexts
    first_held_doc = tok(docs[0], add_special_tokens=False)["input_ids"][:body]
    assert not any(r[1:].tolist() == first_held_doc for r in train)


def test_wrap_forever_counts_epochs(corpus: Path, docs: list[str], tok) -> None:
    size = 40
    one_pass = make_contexts(tok, docs, size).shape[0]
    p = ContextPacker(open_source(corpus), tok, size, epochs=None)
    got = p.take(one_pass * 2 + 5)
    assert torch.equal(got, make_contexts(tok, docs * 3, size)[: one_pass * 2 + 5])
    assert p.state.epoch == 2
    with pytest.raises(SourceError, match="give a limit"):
        next(p.batches(3))
    # resuming across the epoch boundary continues the same stream
    st = p.state
    more = ContextPacker(open_source(corpus), tok, size, epochs=None, state=st).take(4)
    assert torch.equal(more, make_contexts(tok, docs * 4, size)[one_pass * 2 + 5: one_pass * 2 + 9])


def test_short_corpus_is_a_clear_error_with_one_epoch(corpus: Path, docs: list[str], tok) -> None:
    size = 64
    n = make_contexts(tok, docs, size).shape[0]
    p = ContextPacker(open_source(corpus), tok, size)
    p.take(n - 2)
    before = p.state
    with pytest.raises(CorpusExhausted, match=rf"ran out after {n} training contexts \({n * size} tokens\) in 1 "
                                              rf"pass\(es\) over it, and {n + 3} were asked for; allow more epochs"):
        p.take(5)
    assert p.state == before  # nothing was consumed
    assert p.take(2).shape == (2, size) and p.state.contexts == n
    with pytest.raises(CorpusExhausted):
        list(ContextPacker(open_source(corpus), tok, size).batches(8, limit=n + 1))


def test_accounting(corpus: Path, tok) -> None:
    p = ContextPacker(open_source(corpus), tok, 16, held_out_contexts=3)
    p.take(10)
    r = p.report()
    assert (r.train_contexts, r.train_tokens, r.trainable_tokens) == (10, 160, 150)
    assert (r.held_out_contexts, r.held_out_tokens, r.epoch) == (3, 48, 0)


def test_restore_refuses_another_layout(corpus: Path, tok) -> None:
    p = ContextPacker(open_source(corpus), tok, 16, held_out_contexts=2)
    p.take(3)
    with pytest.raises(SourceError, match="context_size 16; resume with that size"):
        ContextPacker(open_source(corpus), tok, 32, held_out_contexts=2, state=p.state)
    with pytest.raises(SourceError, match="reserves 2 held-out contexts"):
        ContextPacker(open_source(corpus), tok, 16, state=p.state)
    with pytest.raises(SourceError, match="unreadable"):
        PackerState.from_dict({"position": {}})


def test_held_out_larger_than_the_corpus(tmp_path: Path, tok) -> None:
    src = open_source(write_jsonl(tmp_path / "small.jsonl", ["a few words", "and a few more"]))
    with pytest.raises(SourceError, match="holds only 0 contexts of 64 tokens, fewer than the 2 held out"):
        ContextPacker(src, tok, 64, held_out_contexts=2).held_out()
    one = open_source(write_jsonl(tmp_path / "one.jsonl", ["a single document of several words"]))
    tiny = ContextPacker(one, tok, 4, held_out_contexts=1, epochs=None)
    assert tiny.held_out().contexts.shape == (1, 4)
    with pytest.raises(SourceError, match="no documents follow the held-out slice"):
        tiny.take(1)
