"""SAE training on the tiny Llama: convergence, multi-hook from one forward, resume, cancel, interrupted
runs, memory across runs. Small budgets (a few thousand tokens) keep this fast."""
from __future__ import annotations

import gc
import threading

import pytest
import torch

from interpretability_workbench.events import TrainingDone, TrainingProgress
from interpretability_workbench.training.checkpoint import has_checkpoint
from interpretability_workbench.training.service import TrainingService


def test_topk_multi_hook_training_converges(state, make_config):
    events = []
    state.bus.add_callback(lambda e: events.append(e) if e.type.startswith("training") else None)
    cfg = make_config(hook_names=["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"])
    run_id = state.training.start(cfg)
    row = state.training.wait(run_id, timeout=300)
    assert row.status == "done", row.error
    m = row.metrics
    assert len(m["sae_ids"]) == 2 and m["peak_memory_bytes"] > 0
    assert "held_out_fvu" not in m  # no per-SAE number at the top level: per member only
    assert [p["hook_name"] for p in m["members"]] == cfg.hook_names
    for p in m["members"]:
        assert p["held_out_fvu"] < 0.6, p
        assert p["l0"] == pytest.approx(cfg.k, abs=0.5)
        assert 0 <= p["dead_fraction"] <= 1
        assert p["ce_loss_recovered"] == p["ce_loss_recovered"]  # not NaN
        assert p["kl_with_sae"] >= 0
        assert sum(p["density_histogram"]["counts"]) == cfg.d_sae
    saes = {r.hook_name: r for r in state.saes.list()}
    assert set(saes) == set(cfg.hook_names)
    entry = state.saes.get(m["sae_ids"][0])
    assert entry.sae.cfg.normalize_activations == "none"  # scale folded on save
    prog = [e for e in events if isinstance(e, TrainingProgress)]
    assert prog and {"run_id", "step", "tokens", "total_tokens", "mse", "fvu", "l0", "dead_fraction", "tokens_per_s",
                     "eta_s", "aggregate", "members", "peak_memory_bytes", "phase"} <= set(prog[-1].to_dict())
    last = [e for e in prog if e.step == cfg.total_steps and e.phase == "training"][-1]
    assert last.fvu == pytest.approx(sum(x.fvu for x in last.members) / 2)  # the named aggregate: a mean
    assert [x.hook_name for x in last.members] == cfg.hook_names and all(x.lr is not None for x in last.members)
    assert isinstance(events[-1], TrainingDone)
    hist = state.training.history(run_id)
    assert hist and hist[-1].step == cfg.total_steps


@pytest.mark.parametrize("arch", ["standard", "batchtopk"])
def test_other_architectures_train(state, make_config, arch):
    cfg = make_config(architecture=arch, total_tokens=8192, l1_coefficient=0.5, ce_eval_contexts=0,
                      checkpoint_every=0)
    row = state.training.wait(state.training.start(cfg), timeout=300)
    assert row.status == "done", row.error
    assert row.metrics["members"][0]["held_out_fvu"] < 0.9
    sae = state.saes.get(row.sae_id).sae
    if arch == "batchtopk":
        assert float(sae.threshold.min()) > 0  # inference threshold learned


def _start_and_cancel_after(state, cfg, min_step):
    """Start a run and cancel it from its own progress callback once it reaches ``min_step`` (the
    listener is attached before the start, so a fast machine cannot finish the run unseen)."""
    got = threading.Event()
    run = {}

    def cb(e):
        if (isinstance(e, TrainingProgress) and e.run_id == run.get("id")
                and e.step >= min_step and not got.is_set()):
            got.set()
            state.training.cancel(run["id"])
    remove = state.bus.add_callback(cb)
    try:
        run["id"] = state.training.start(cfg)
        assert got.wait(240)
    finally:
        remove()
    return run["id"]


def test_cancel_interrupt_and_resume_continue_the_step_count(state, make_config):
    cfg = make_config(total_tokens=16384, checkpoint_every=4, ce_eval_contexts=0, progress_interval_s=0.0)
    run_id = _start_and_cancel_after(state, cfg, 5)
    row = state.training.wait(run_id, timeout=120)
    assert row.status == "cancelled"
    assert has_checkpoint(state.settings.runs_dir / run_id / "checkpoint")
    stopped_at = row.step
    assert 5 <= stopped_at < cfg.total_steps
    # a crash leaves the row 'running': a fresh service (start-up) marks it interrupted
    old = state.training
    old.runs.update(run_id, status="running")
    state.training = TrainingService(old.runs, state.model, state.saes, state.corpora, state.bus.publish,
                                     state.patches.original, state.settings.runs_dir)
    assert state.training.get(run_id).status == "interrupted"
    steps_seen = []
    state.bus.on(TrainingProgress, lambda e: steps_seen.append(e.step) if e.run_id == run_id else None)
    state.training.resume(run_id)
    row = state.training.wait(run_id, timeout=300)
    assert row.status == "done", row.error
    assert row.step == cfg.total_steps and row.tokens_seen == cfg.total_steps * cfg.batch_size
    assert min(s for s in steps_seen if s) >= stopped_at  # continued, not restarted


def test_memory_does_not_grow_across_runs(state, make_config):
    def is_plain_tensor(o) -> bool:
        try:
            return isinstance(o, torch.Tensor) and not isinstance(o, torch.nn.Parameter)
        except ReferenceError:  # a weak proxy whose referent is gone
            return False

    def tensor_bytes():
        gc.collect()
        return sum(o.numel() * o.element_size() for o in gc.get_objects() if is_plain_tensor(o))
    sizes = []
    for _ in range(3):
        cfg = make_config(total_tokens=4096, ce_eval_contexts=0, checkpoint_every=0, eval_tokens=1024)
        assert state.training.wait(state.training.start(cfg), timeout=300).status == "done"
        state.saes._cache.clear()
        sizes.append(tensor_bytes())
    assert sizes[2] <= sizes[0] + 4 * 1024 * 1024, sizes
