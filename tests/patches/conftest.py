"""Hand-built SAEs registered on the state (training is another issue)."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

PROMPTS = ["def read(path):\n    return open(path).read()", "The module provides a class for parsing",
           "Return the number of items in the list"]


def make_sae(state, *, layer: int = 1, d_sae: int = 32, seed: int = 0, arch: str = "standard", kind: str = "resid_post") -> tuple[str, SparseAutoencoder]:
    lm = state.require_model()
    cfg = SAEConfig(d_in=lm.d_model, d_sae=d_sae, architecture=arch, k=8 if arch == "topk" else None,
                    hook_name=f"blocks.{layer}.hook_{kind}", model_id=lm.model_id)
    sae = SparseAutoencoder(cfg)
    sae.reset_parameters(seed=seed)  # unit decoder rows, W_enc = W_decᵀ, zero biases
    sae_id = state.saes.register(sae, source="imported")
    return sae_id, state.saes.get(sae_id).sae


@pytest.fixture
def sae_id(state) -> str:
    return make_sae(state)[0]


def peft_roundtrip_diff(state, patch_id: str, base_dir, tmp_path, texts=PROMPTS) -> tuple[float, float]:
    """Export ``patch_id`` as a PEFT adapter, reload it with ``PeftModel.from_pretrained`` on a fresh copy of
    the base model from ``base_dir``, and compare next-token logits with the workbench's patched logits.
    Returns (largest |ours − PEFT's|, largest |ours − original|) over ``texts``."""
    import io
    import zipfile

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from interpretability_workbench.model.tokenize import encode_prompt

    ex = state.patch_transfer.export(patch_id, "peft")
    with zipfile.ZipFile(io.BytesIO(ex.data)) as zf:
        zf.extractall(tmp_path)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32).eval()
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / patch_id)).eval()
    diff = moved = 0.0
    sess = state.inference.session()
    for text in texts:
        orig, ours, _, _ = sess.logits(text, [patch_id])
        with torch.no_grad():
            theirs = peft_model(input_ids=encode_prompt(state.lm, text)).logits[0, -1]
        diff = max(diff, float((ours - theirs.to(ours.dtype)).abs().max()))
        moved = max(moved, float((ours - orig).abs().max()))
    return diff, moved
