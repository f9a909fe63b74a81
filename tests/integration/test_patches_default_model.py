"""Default model (SmolLM2-135M): original next-token probabilities equal a plain transformers forward, and a
steer patch at layer 6 through the cached live path equals a full patched forward."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.model.tokenize import encode_prompt
from interpretability_workbench.model.hooks import forward_last_logits
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_state(tmp_path_factory, default_lm):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    folder = next((p for p in (default_lm.model.name_or_path,) if p), None)
    st = WorkbenchState(Settings(home=tmp_path_factory.mktemp("iwb"), model=str(folder), device="cpu", dtype="float32"))
    st.load_model(str(folder))
    yield st
    st.close()


def test_paris_and_plain_forward(default_state, default_lm):
    st = default_state
    text = "The capital of France is"
    c = st.inference.compare(text, top_k=5, patch_ids=[])
    assert c.original[0].token == " Paris"
    ids = encode_prompt(default_lm, text)
    with torch.no_grad():
        ref = default_lm.model(input_ids=ids).logits[0, -1].float().softmax(-1)
    orig, _, _, _ = st.inference.session().logits(text, [])
    assert torch.allclose(orig.softmax(-1), ref, atol=1e-5)


def test_layer6_steer_live_path_equals_full_forward(default_state):
    st = default_state
    lm = st.lm
    sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=64, hook_name="blocks.6.hook_resid_post",
                                      model_id=lm.model_id, k=8))
    sae.reset_parameters(seed=0)
    sid = st.saes.register(sae, source="imported")
    p = st.patches.create(sae_id=sid, features=[3], mode="steer", strength=20.0)
    text = "The capital of France is"
    sess = st.inference.session()
    orig, patched, _, layer = sess.logits(text, [p.id])
    assert layer == 6 and (patched - orig).abs().max() > 1e-2
    with st.patches.using([p.id]):
        full = forward_last_logits(lm.model, encode_prompt(lm, text))[0]
    assert torch.allclose(patched, full, atol=1e-4)
    st.patches.delete(p.id)


@pytest.mark.parametrize("mode,strength,features", [("ablate", 1.0, [3, 7, 11]), ("scale", 3.0, [3, 7]),
                                                    ("steer", 20.0, [3])])
def test_peft_round_trip_on_the_default_model(default_state, tmp_path, mode, strength, features):
    """SmolLM2 ties its embeddings and unembedding: an ablation edits the embedding (a lora_embedding delta)
    while the unembedding must stay the original. Reloaded in PEFT, the adapter gives the workbench's
    patched logits (fp32, 1e-4)."""
    from tests.patches.conftest import peft_roundtrip_diff

    st = default_state
    lm = st.lm
    assert lm.model.config.tie_word_embeddings
    sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=64, hook_name="blocks.6.hook_resid_post",
                                      model_id=lm.model_id, k=8))
    sae.reset_parameters(seed=1)
    sid = st.saes.register(sae, source="imported")
    p = st.patches.create(sae_id=sid, features=features, mode=mode, strength=strength, enabled=False)
    try:
        texts = ["The capital of France is", "def read(path):\n    return open(path).read()"]
        diff, moved = peft_roundtrip_diff(st, p.id, lm.model.name_or_path, tmp_path, texts)
        assert diff <= 1e-4 and moved > 1e-3, (mode, diff, moved)
    finally:
        st.patches.delete(p.id)
