"""The analysis on the embedded default model (SmolLM2-135M): reported activations match a fresh forward."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

pytestmark = pytest.mark.integration


def test_default_model_top_contexts_and_text(tmp_path, default_lm):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(Settings(home=tmp_path / "home", model="none", device="cpu", dtype="float32"))
    try:
        st.model.adopt(default_lm)
        hook = "blocks.2.hook_resid_post"
        sae = SparseAutoencoder(SAEConfig(d_in=default_lm.d_model, d_sae=256, architecture="topk", k=16,
                                          hook_name=hook, model_id=default_lm.model_id, context_size=64))
        sae.reset_parameters(seed=0)
        sae_id = st.saes.register(sae, source="imported")
        summary = st.features.analyze(sae_id, n_tokens=630)
        assert summary["n_tokens"] + summary["excluded_tokens"] == 630 and summary["dead"] < 256
        sae = st.saes.get(sae_id).sae
        contexts = st.features.analysis_contexts(default_lm, sae, n_tokens=630)
        f = sae.encode(run_with_cache(default_lm.model, contexts, [hook]).cache[hook][:, 1:].float())
        page = st.features.list_features(sae_id, sort="-max_activation", limit=3)
        for item in page["items"]:
            d = st.features.get_feature(sae_id, item["index"])
            for t in d["top_contexts"]:
                assert abs(float(f[t["context"], :, item["index"]].max()) - t["max"]) < 1e-4
            assert d["label"] and len(d["top_positive_logits"]) == 10
        text = st.features.activations(sae_id, "def parse(self, text):", top_k=3)
        assert text.bos_excluded and len(text.per_token) == len(text.tokens)
    finally:
        st.shutdown()
        st.close()
