"""Integration: the default model (SmolLM2-135M), layer 6, a small budget trains and reports held-out FVU
and CE-loss recovered."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_HOME = Path(os.environ.get("IWB_HOME", Path(__file__).resolve().parents[2] / "workspace"))


@pytest.mark.integration
def test_default_model_layer6_trains(tmp_path, default_lm):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState
    from interpretability_workbench.training.config import TrainingConfig

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(DEFAULT_HOME / "models")
    st = WorkbenchState(Settings(home=home, model="default", device="cpu", dtype="float32"))
    try:
        st.model.adopt(default_lm)
        cfg = TrainingConfig(hook_names=["blocks.6.hook_resid_post"], d_sae=2304, k=32, total_tokens=30_720,
                             batch_size=1024, buffer_tokens=8192, lr=1e-3, eval_tokens=4096, ce_eval_contexts=4,
                             checkpoint_every=0, analyze=False, accelerator="cpu")
        row = st.training.wait(st.training.start(cfg), timeout=600)
        assert row.status == "done", row.error
        m = row.metrics["members"][0]
        assert m["held_out_fvu"] < 0.5, m["held_out_fvu"]
        assert m["ce_loss_recovered"] > 0.5, m["ce_loss_recovered"]
        assert m["l0"] == pytest.approx(32, abs=1)
    finally:
        st.shutdown()
        st.close()
