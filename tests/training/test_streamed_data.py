"""Streamed training data on the tiny Llama: a run interrupted and resumed (by a fresh service, as after a
server restart) trains on exactly the contexts and batches of an uninterrupted one; the held-out slice is
never trained on; a corpus shorter than the budget is refused up front (epochs=1) or repeated and reported;
runs train from a recorded trace."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from interpretability_workbench.activations.corpus import load_texts
from interpretability_workbench.activations.packing import ContextPacker
from interpretability_workbench.activations.sources import SourceSpec, open_source
from interpretability_workbench.activations.store import write_trace
from interpretability_workbench.activations.stream import context_digest
from interpretability_workbench.events import TrainingProgress
from interpretability_workbench.store.corpora import CorpusRecord
from interpretability_workbench.store.db import now
from interpretability_workbench.training.service import TrainingService


def weights(state, sae_id: str) -> dict[str, torch.Tensor]:
    state.saes._cache.clear()
    return {k: v.clone() for k, v in state.saes.get(sae_id).sae.state_dict().items()}


def small_corpus(state, tmp_path: Path, n_docs: int) -> str:
    """A corpus row over the first documents of the built-in corpus, counted."""
    p = tmp_path / "small.jsonl"
    p.write_text("".join(json.dumps({"text": t}) + "\n" for t in load_texts(None)[:n_docs]))
    rec = state.corpora.add_file(p)
    assert state.corpora.wait_counts(120)
    assert state.corpora.get(rec.id).record.status == "ready"
    return rec.id


def test_resume_trains_exactly_the_uninterrupted_contexts(state, make_config) -> None:
    # small shuffle blocks (8 contexts = 504 rows) against 512-row batches: the run stops mid-block
    cfg = make_config(total_tokens=12 * 512, buffer_tokens=500, checkpoint_every=1, ce_eval_contexts=0,
                      progress_interval_s=0.0, hook_names=["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"])
    whole = state.training.wait(state.training.start(cfg), timeout=300)
    assert whole.status == "done", whole.error

    got = threading.Event()
    run: dict[str, str] = {}

    def stop_at_5(e) -> None:
        if isinstance(e, TrainingProgress) and e.run_id == run.get("id") and e.step >= 5 and not got.is_set():
            got.set()
            state.training.cancel(run["id"])
    remove = state.bus.add_callback(stop_at_5)
    try:
        run["id"] = state.training.start(cfg)
        assert got.wait(240)
    finally:
        remove()
    cut = state.training.wait(run["id"], timeout=120)
    assert cut.status == "cancelled" and 5 <= cut.step < cfg.total_steps
    ck = json.loads((state.settings.runs_dir / run["id"] / "checkpoint" / "state.json").read_text())
    assert ck["step"] == cut.step and ck["stream"]["rows"] == cut.step * cfg.batch_size  # the last *trained* batch
    old = state.training  # a fresh service, as after a restart
    state.training = TrainingService(old.runs, state.model, state.saes, state.corpora, state.bus.publish,
                                     state.patches.original, state.settings.runs_dir)
    state.training.resume(run["id"])
    resumed = state.training.wait(run["id"], timeout=300)
    assert resumed.status == "done", resumed.error

    a, b = whole.metrics, resumed.metrics
    assert a["train_tokens"] == b["train_tokens"] == cfg.train_rows
    assert a["train_contexts"] == b["train_contexts"] and a["contexts_digest"] == b["contexts_digest"]
    for sa, sb in zip(a["sae_ids"], b["sae_ids"]):  # same batches in the same order -> the same SAEs
        wa, wb = weights(state, sa), weights(state, sb)
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)

    # the union of trained contexts is exactly the contexts after the held-out slice, and excludes it
    spec = state.corpora.source("default")
    lm = state.model.lm
    packer = ContextPacker(open_source(spec), lm.tokenizer, cfg.context_size, held_out_contexts=cfg.held_out_contexts)
    held = packer.held_out().contexts
    trained = packer.take(a["train_contexts"])
    assert f"{context_digest(trained):016x}" == a["contexts_digest"]
    assert not {tuple(r) for r in held.tolist()} & {tuple(r) for r in trained.tolist()}
    assert a["held_out_tokens"] == cfg.eval_tokens and a["held_out_contexts"] == held.shape[0]


def test_a_short_corpus_is_refused_or_repeated_and_reported(client, state, tmp_path: Path) -> None:
    cid = small_corpus(state, tmp_path, 60)
    count = state.corpora.known_count(cid, state.model.lm)
    body = dict(layer=1, d_sae=64, k=4, total_tokens=count.tokens * 2 // 512 * 512, batch_size=512,
                context_size=64, checkpoint_every=0, eval_tokens=512, ce_eval_contexts=0, analyze=False,
                accelerator="cpu", corpus=cid, epochs=1)
    r = client.post("/api/training", json=body)
    assert r.status_code == 422, r.text
    assert f"the corpus holds {count.tokens} tokens" in r.json()["detail"] and "set epochs to" in r.json()["detail"]
    assert client.get("/api/training").json() == []
    r = client.post("/api/training", json={**body, "epochs": None})
    assert r.status_code == 202, r.text
    (note,) = r.json()["notes"]
    assert "reads the data about" in note
    run_id = r.json()["run_id"]
    row = state.training.wait(run_id, timeout=300)
    assert row.status == "done", row.error
    detail = client.get(f"/api/training/{run_id}").json()
    assert detail["passes"] >= 2 and detail["train_tokens"] == body["total_tokens"] and detail["notes"] == [note]


def test_an_uncounted_short_corpus_fails_clearly_with_epochs_1(state, make_config, tmp_path: Path) -> None:
    p = tmp_path / "tiny.jsonl"
    p.write_text("".join(json.dumps({"text": t}) + "\n" for t in load_texts(None)[:30]))
    state.corpora.repo.insert(CorpusRecord(id="corpus_uncounted", name="tiny.jsonl", path=str(p), n_docs=None,
                                           n_tokens=None, size_bytes=p.stat().st_size, created_at=now(),
                                           spec=SourceSpec(location=str(p), kind="path").to_dict()))
    cfg = make_config(corpus="corpus_uncounted", epochs=1, total_tokens=64 * 512, ce_eval_contexts=0,
                      eval_tokens=512, checkpoint_every=0)
    row = state.training.wait(state.training.start(cfg), timeout=300)
    assert row.status == "failed"
    assert "ran out after" in row.error and "allow more epochs" in row.error


def test_training_from_a_trace(state, make_config, tmp_path: Path) -> None:
    lm = state.model.lm
    hook = "blocks.1.hook_resid_post"
    packer = ContextPacker(open_source(state.corpora.source("default")), lm.tokenizer, 64, held_out_contexts=33)
    trace = tmp_path / "trace"
    write_trace(lm, packer.take(80), hook, trace, batch_size=16, shard_tokens=2000, held_out_contexts=33)
    cfg = make_config(trace_dir=str(trace), total_tokens=8 * 512, ce_eval_contexts=0, checkpoint_every=0,
                      buffer_tokens=1024, sweep={"k": [4, 8]})
    row = state.training.wait(state.training.start(cfg), timeout=300)
    assert row.status == "done", row.error
    m = row.metrics
    assert [p["k"] for p in m["members"]] == [4, 8] and m["train_tokens"] == 8 * 512 and m["passes"] == 1
    assert all(p["held_out_fvu"] < 1 for p in m["members"])
    too_long = make_config(trace_dir=str(trace), total_tokens=80 * 63 + 512, epochs=1, ce_eval_contexts=0)
    with pytest.raises(Exception, match="the trace holds 5040 activations"):
        state.training.start(too_long)
