"""The whole REST loop on CUDA with the tiny random Llama in bf16 (tolerances as in tests/placement/test_bf16_loop.py),
and feature analysis on the GPU agreeing with the same analysis on the CPU (fp32 model)."""
from __future__ import annotations

import pytest
import torch

from placement.loop import run_rest_loop

pytestmark = pytest.mark.gpu


def _state(home, model_dir, device: str, dtype: str):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(Settings(home=home, model=str(model_dir), device=device, dtype=dtype))
    st.load_model(st.settings.model)
    return st


@pytest.fixture(scope="module")
def cuda_bf16(tmp_path_factory, tiny_llama_dir):
    st = _state(tmp_path_factory.mktemp("cudabf16"), tiny_llama_dir, "cuda", "bfloat16")
    yield st
    st.shutdown()
    st.close()


def test_rest_loop_on_cuda_in_bf16(cuda_bf16, tiny_llama_dir, tmp_path):
    from fastapi.testclient import TestClient
    from transformers import AutoModelForCausalLM

    from interpretability_workbench.server.app import create_app

    st = cuda_bf16
    assert st.lm.device.type == "cuda" and st.lm.dtype == torch.bfloat16
    torch.cuda.reset_peak_memory_stats()
    with TestClient(create_app(st.settings, st, load_model=False)) as client:
        res = run_rest_loop(client, st, tmp_path,
                            lambda: AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.bfloat16)
                            .to(st.lm.device).eval(),
                            layers=[0, 1], d_sae=256, k=16, total_tokens=16_384, batch_size=1024)
        info = client.get("/api/model").json()
    assert all(200 <= s < 300 for s in res.statuses.values()), res.statuses
    assert res.max_prob_diff_peft <= 1e-3 and res.max_prob_change_patch > 1e-5, res
    assert res.max_encode_diff_saelens <= 1e-4, res
    for sid in res.sae_ids:
        assert st.saes.get(sid).sae.W_enc.device.type == "cuda"
    (dev,) = [d for d in info["devices"] if d["device"] == str(st.lm.device)]
    assert dev["total_bytes"] > dev["free_bytes"] > 0 and dev["allocated_bytes"] > 0
    assert dev["layers"] == list(range(info["n_layers"]))
    print(res.seconds)


def test_gpu_analysis_agrees_with_the_cpu(tmp_path, tiny_llama_dir):
    from interpretability_workbench.features.analysis import AnalysisConfig
    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder

    rows = {}
    for device in ("cpu", "cuda"):
        st = _state(tmp_path / device, tiny_llama_dir, device, "float32")
        try:
            st.features.config = AnalysisConfig(tf32=False)
            lm = st.lm
            sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=256, architecture="topk", k=8,
                                              hook_name="blocks.1.hook_resid_post", model_id=lm.model_id,
                                              context_size=64))
            sae.reset_parameters(seed=0)
            sid = st.saes.register(sae, source="imported")
            summary = st.features.analyze(sid, n_tokens=4032)
            page = st.features.list_features(sid, offset=0, limit=256, sort="index")["items"]
            rows[device] = (summary["n_tokens"], [r["density"] for r in page], [r["max_activation"] for r in page])
        finally:
            st.shutdown()
            st.close()
    n, d_cpu, m_cpu = rows["cpu"]
    _, d_gpu, m_gpu = rows["cuda"]
    assert torch.allclose(torch.tensor(d_gpu), torch.tensor(d_cpu), atol=2 / n, rtol=0)
    assert torch.allclose(torch.tensor(m_gpu), torch.tensor(m_cpu), rtol=1e-3, atol=1e-5)
