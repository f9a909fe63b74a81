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
