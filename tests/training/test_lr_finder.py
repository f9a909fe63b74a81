"""The optional LR finder (Lightning's tuner) runs before training and its suggestion is used."""
from __future__ import annotations


def test_lr_finder_flag(state, make_config):
    cfg = make_config(total_tokens=8192, lr_finder=True, ce_eval_contexts=0, checkpoint_every=0, eval_tokens=1024)
    row = state.training.wait(state.training.start(cfg), timeout=300)
    assert row.status == "done", row.error
    assert not list(state.settings.runs_dir.glob("*/.lr_find*"))
