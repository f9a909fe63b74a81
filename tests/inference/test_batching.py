"""Dynamic batching of one-shot comparisons: a right-padded batch gives each prompt the logits of its own
unpadded forward (Llama, GPT-2, NeoX), requests are grouped by patch set, a bad item fails alone, and the
batch worker runs queued requests together in arrival order."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from interpretability_workbench.errors import Invalid, NotFound
from interpretability_workbench.inference.batching import Batcher, CompareRequest, logits_many
from interpretability_workbench.model.hooks import forward_last_logits
from interpretability_workbench.model.tokenize import encode_prompt

from .conftest import make_sae

TEXTS = ["Return the number of items in the list", "def f(x):\n    return x + 1",
         "The module provides a class for parsing the files of a folder and writing a summary of each", "Hi"]
ATOL, RTOL = 1e-5, 1e-4
"""float32 agreement of a padded batch with the unpadded forward (only matmul shapes differ; measured
differences are ~2e-7 on logits of ~0.5)."""


@pytest.fixture(params=["llama", "gpt2", "neox"])
def arch_state(request, tmp_path, tiny_model_dirs):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    d = str(tiny_model_dirs[request.param])
    st = WorkbenchState(Settings(home=tmp_path / "home", model=d, device="cpu", dtype="float32",
                                 max_concurrent_inference=8))
    st.load_model(d)
    yield st
    st.shutdown()
    st.close()


def _patch_sets(st) -> list[list[str]]:
    sid1, _ = make_sae(st, layer=1)
    sid2, _ = make_sae(st, layer=2, seed=1)
    steer = st.patches.create(sae_id=sid1, features=[2], mode="steer", strength=6.0).id
    ablate = st.patches.create(sae_id=sid1, features=[1, 3], mode="ablate").id  # embeddings: from block 0
    clamp = st.patches.create(sae_id=sid2, features=[4], mode="clamp", strength=1.0).id
    return [[], [steer], [ablate], [clamp], [steer, clamp]]


def _unpadded(st, text, pids):
    ids = encode_prompt(st.lm, text)
    with st.patches.original:
        orig = forward_last_logits(st.lm.model, ids)[0]
    with st.patches.using(pids):
        patched = forward_last_logits(st.lm.model, ids)[0]
    return orig, patched


def test_padded_batch_equals_each_unpadded_forward(arch_state):
    st = arch_state
    items = [(t, p) for p in _patch_sets(st) for t in TEXTS]
    got = logits_many(st.model, st.patches, 1024, items)
    assert len({int(encode_prompt(st.lm, t).shape[1]) for t in TEXTS}) == len(TEXTS)  # really padded
    for (text, pids), r in zip(items, got):
        orig, patched = _unpadded(st, text, pids)
        torch.testing.assert_close(r.original, orig, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(r.patched, patched, atol=ATOL, rtol=RTOL)
        assert r.patch_ids == pids and r.n_tokens == encode_prompt(st.lm, text).shape[1]
        if pids:
            assert float((r.patched - r.original).abs().max()) > 1e-6


def test_compare_many_equals_compare_one_at_a_time(arch_state):
    st = arch_state
    reqs = [CompareRequest(t, 5, p) for p in _patch_sets(st)[:3] for t in TEXTS[:3]]
    many = st.inference.compare_many(reqs)
    for q, c in zip(reqs, many):
        one = st.inference.session().compare(q.text, q.top_k, q.patch_ids)
        assert [t.id for t in c.original] == [t.id for t in one.original]
        assert [t.id for t in c.patched] == [t.id for t in one.patched]
        for a, b in zip(c.patched + c.original, one.patched + one.original):
            assert a.prob == pytest.approx(b.prob, abs=1e-6)
        # logits agree to float32 rounding of a padded batch (~1e-6); a KL of ~1e-4 moves by a few 1e-7
        assert c.kl == pytest.approx(one.kl, rel=1e-3, abs=1e-6)
        assert (c.n_tokens, c.from_layer, c.patch_ids) == (one.n_tokens, one.from_layer, one.patch_ids)


def test_a_bad_item_fails_alone(state):
    sid, _ = make_sae(state, layer=1)
    steer = state.patches.create(sae_id=sid, features=[2], mode="steer", strength=6.0).id
    reqs = [CompareRequest(TEXTS[0], 3, [steer]), CompareRequest("x " * 2000, 3, None),
            CompareRequest(TEXTS[1], 3, ["patch_nope"]), CompareRequest("   ", 3, None), CompareRequest(TEXTS[1], 3, [])]
    out = state.inference.compare_many(reqs)
    assert isinstance(out[1], Invalid) and isinstance(out[2], NotFound) and isinstance(out[3], Invalid)
    assert out[0].patch_ids == [steer] and out[0].kl > 0 and out[4].kl == 0
    with pytest.raises(NotFound):
        state.inference.compare(TEXTS[0], 3, ["patch_nope"])


def test_concurrent_compares_are_batched_and_equal_sequential_ones(state):
    sid, _ = make_sae(state, layer=1)
    steer = state.patches.create(sae_id=sid, features=[2], mode="steer", strength=6.0).id
    reqs = [(TEXTS[i % len(TEXTS)], [steer] if i % 2 else []) for i in range(12)]
    want = [state.inference.session().compare(t, 4, p) for t, p in reqs]
    got: list = [None] * len(reqs)
    batcher = state.inference.batcher
    before = batcher.stats()

    def call(i: int) -> None:
        got[i] = state.inference.compare(reqs[i][0], 4, reqs[i][1])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(reqs))]
    with state.model.lock:  # hold the model: every request queues behind the first batch
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while len(batcher._queue) < len(reqs) - batcher.max_batch and time.time() < deadline:
            time.sleep(0.01)
    for t in threads:
        t.join(60)
    after = batcher.stats()
    assert after.requests - before.requests == len(reqs)
    assert after.batches - before.batches < len(reqs) and after.largest > 1
    for w, g in zip(want, got):
        assert [t.id for t in g.patched] == [t.id for t in w.patched]
        assert g.kl == pytest.approx(w.kl, rel=1e-3, abs=1e-7)


def test_compare_inside_a_model_lock_scope_runs_inline(state):
    with state.patches.using([]):  # holds the model lock: must not wait on the worker
        c = state.inference.compare(TEXTS[0], 3, [])
    assert c.kl == 0 and len(c.original) == 3


def test_batcher_takes_queued_requests_in_order_up_to_max_batch():
    release = threading.Event()
    seen: list[list[str]] = []

    def run(reqs):
        seen.append([r.text for r in reqs])
        if len(seen) == 1:
            release.wait(10)
        return [ValueError(r.text) if r.text == "bad" else r.text.upper() for r in reqs]

    b = Batcher(run, max_batch=3, window_s=0.0)
    first = b.submit(CompareRequest("a"))
    while not seen:
        time.sleep(0.005)
    futs = [b.submit(CompareRequest(t)) for t in ("b", "c", "bad", "d", "e")]
    release.set()
    assert first.result(10) == "A"
    assert [f.exception(10) is None for f in futs] == [True, True, False, True, True]
    assert [f.result() for f in futs if f.exception() is None] == ["B", "C", "D", "E"]
    assert seen == [["a"], ["b", "c", "bad"], ["d", "e"]]
    assert b.stats() == (3, 6, 3)
    b.close()
    assert b.submit(CompareRequest("f")).result(10) == "F"  # a closed batcher starts again on demand
    b.close()
