import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from interpretability_workbench.activations.corpus import (CorpusError, count_tokens, load_texts, make_contexts,
                                                           split_contexts)
from interpretability_workbench.activations.store import (ShuffleBuffer, iter_activations, read_manifest,
                                                          read_trace, write_trace)
from interpretability_workbench.model.hooks import run_with_cache


def test_default_corpus_ships_and_is_large_enough(tiny_lm):
    texts = load_texts(None)
    assert len(texts) > 1000
    # the >=100k-token check on the default tokenizer lives in the integration suite
    assert sum(len(t) for t in texts) > 400_000


def test_user_corpora_txt_jsonl_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\nstill first\n\nsecond doc\n\n\n")
    assert load_texts(tmp_path / "a.txt") == ["first doc\nstill first", "second doc"]
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "x y"}) + "\n\n" + json.dumps({"text": "z"}) + "\n")
    assert load_texts(tmp_path / "b.jsonl") == ["x y", "z"]
    pq.write_table(pa.table({"text": ["p", "q", None]}), tmp_path / "c.parquet")
    assert load_texts(tmp_path / "c.parquet") == ["p", "q"]


def test_corpus_errors_are_clear(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n\n ")
    with pytest.raises(CorpusError, match="contains no text"):
        load_texts(tmp_path / "empty.txt")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(CorpusError, match="line 2 is not valid JSON"):
        load_texts(tmp_path / "bad.jsonl")
    (tmp_path / "nofield.jsonl").write_text('{"body": "ok"}\n')
    with pytest.raises(CorpusError, match="no string field 'text'"):
        load_texts(tmp_path / "nofield.jsonl")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(CorpusError, match="unsupported corpus type"):
        load_texts(tmp_path / "x.csv")
    with pytest.raises(CorpusError, match="does not exist"):
        load_texts(tmp_path / "nope.txt")


def test_contexts_fixed_length_with_bos(tiny_lm):
    texts = load_texts(None)[:50]
    ctx = make_contexts(tiny_lm.tokenizer, texts, context_size=32)
    assert ctx.dtype == torch.long and ctx.shape[1] == 32
    assert (ctx[:, 0] == tiny_lm.tokenizer.bos_token_id).all()
    n_tok = count_tokens(tiny_lm.tokenizer, texts) + len(texts)  # + one EOS separator per doc
    assert ctx.shape[0] == n_tok // 31
    assert make_contexts(tiny_lm.tokenizer, texts, 32, max_contexts=3).shape == (3, 32)
    s = split_contexts(ctx, 0.25)
    assert s.train.shape[0] + s.held_out.shape[0] == ctx.shape[0] and s.held_out.shape[0] >= 1
    with pytest.raises(CorpusError, match="fewer than one context"):
        make_contexts(tiny_lm.tokenizer, ["hi"], context_size=64)
    with pytest.raises(CorpusError, match="no text"):
        make_contexts(tiny_lm.tokenizer, [], 16)


def test_iter_activations_excludes_first_position_and_matches_forward(tiny_lm):
    ctx = make_contexts(tiny_lm.tokenizer, load_texts(None)[:30], 16, max_contexts=10)
    names = ["blocks.0.hook_resid_post", "blocks.1.hook_mlp_out"]
    batches = list(iter_activations(tiny_lm, ctx, names, batch_size=4))
    assert len(batches) == 3 and sum(b[names[0]].shape[0] for b in batches) == 10 * 15
    ref = run_with_cache(tiny_lm.model, ctx[:4], names, stop_at_layer=False).cache
    for n in names:
        torch.testing.assert_close(batches[0][n], ref[n][:, 1:].reshape(-1, 64))
    capped = list(iter_activations(tiny_lm, ctx, names[:1], batch_size=4, max_tokens=70))
    assert sum(b[names[0]].shape[0] for b in capped) == 70


def test_shuffle_buffer_is_a_permutation():
    src = [torch.arange(i * 100, (i + 1) * 100, dtype=torch.float32)[:, None] for i in range(7)]
    out = list(ShuffleBuffer(iter(src), buffer_tokens=250, batch_size=50, seed=1))
    allv = torch.cat(out).squeeze(1)
    assert sorted(allv.tolist()) == list(range(700))
    assert not torch.equal(allv, torch.arange(700.0))  # mixed
    assert all(b.shape[0] == 50 for b in out)


def test_parquet_trace_round_trip(tiny_lm, tmp_path):
    ctx = make_contexts(tiny_lm.tokenizer, load_texts(None)[:30], 16, max_contexts=12)
    man = write_trace(tiny_lm, ctx, "blocks.1.hook_resid_post", tmp_path / "tr", n_tokens=100, batch_size=5,
                      shard_tokens=40)
    assert man.n_tokens == 100 and len(man.shards) == 2 and sum(s["n_tokens"] for s in man.shards) == 100
    assert all(s["n_tokens"] < 40 + 5 * 15 for s in man.shards)  # a shard closes at the batch that crosses 40
    m2 = read_manifest(tmp_path / "tr")
    assert (m2.model_id, m2.hook_name, m2.d_model, m2.dtype) == (tiny_lm.model_id, "blocks.1.hook_resid_post", 64, "float32")
    got = torch.cat(list(read_trace(tmp_path / "tr", chunk_tokens=32)))
    ref = run_with_cache(tiny_lm.model, ctx[:7], ["blocks.1.hook_resid_post"]).cache["blocks.1.hook_resid_post"]
    ref = ref[:, 1:].reshape(-1, 64)[:100]
    torch.testing.assert_close(got, ref)
    table = pq.read_table(tmp_path / "tr" / man.shards[0]["file"])
    assert table.column("position").to_pylist()[0] == 1  # position 0 excluded
    with pytest.raises(FileNotFoundError, match="not a trace folder"):
        read_manifest(tmp_path)
