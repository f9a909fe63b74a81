"""Acceptance with ``IWB_DTYPE=bfloat16`` on the default model (SmolLM2-135M): the REST loop — train 20k tokens
→ analysis → contrast → ablate patch → /api/inference → /api/provenance → PEFT export reloaded in peft —
answers 2xx, and the PEFT-reloaded patched next-token probabilities match the workbench's within 1e-3
(absolute, over the whole vocabulary; bf16 tolerance: the workbench adds its float32 deltas to the upcast bf16
output and rounds once, as PEFT does, so the two agree up to a one-ulp logit flip, ≲ 1e-3 in probability).
bf16 matmuls are slow on most CPUs (several times fp32): minutes on an idle machine, marked slow as well as
integration, with an hour's timeout."""
from __future__ import annotations

import os

import pytest
import torch

from placement.loop import run_rest_loop  # tests/placement/loop.py (tests/ is on sys.path under pytest)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

DEFAULT_HOME = os.environ.get("IWB_HOME")


@pytest.fixture(scope="module")
def bf16_default(tmp_path_factory):
    from pathlib import Path

    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    home = tmp_path_factory.mktemp("bf16default")
    cache = Path(DEFAULT_HOME or Path(__file__).resolve().parents[2] / "workspace") / "models"
    (home / "models").symlink_to(cache.resolve())  # the dequantized default model, read only
    mp = pytest.MonkeyPatch()
    mp.setenv("IWB_DTYPE", "bfloat16")
    mp.setenv("IWB_HOME", str(home))
    mp.setenv("IWB_MODEL", "default")
    mp.setenv("IWB_DEVICE", "cpu")
    try:
        settings = Settings()
        assert settings.dtype == "bfloat16"
        st = WorkbenchState(settings)
        st.load_model(settings.model)
    finally:
        mp.undo()
    yield st
    st.shutdown()
    st.close()


def test_rest_loop_in_bf16_on_the_default_model(bf16_default, tmp_path):
    from fastapi.testclient import TestClient
    from transformers import AutoModelForCausalLM

    from interpretability_workbench.server.app import create_app

    st = bf16_default
    assert st.lm.dtype == torch.bfloat16 and st.lm.model_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    folder = st.lm.model.config._name_or_path
    with TestClient(create_app(st.settings, st, load_model=False)) as client:
        res = run_rest_loop(client, st, tmp_path,
                            lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval(),
                            layers=[4, 6], d_sae=1152, k=16, total_tokens=20_480, batch_size=1024,
                            context_size=128, analysis_tokens=4_064)
    assert all(200 <= s < 300 for s in res.statuses.values()), res.statuses
    assert res.max_prob_diff_peft <= 1e-3, res
    assert res.max_prob_change_patch > 10 * max(res.max_prob_diff_peft, 1e-5), res
    assert res.max_encode_diff_saelens <= 1e-4, res
