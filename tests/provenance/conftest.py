"""Hand-built SAEs on the tiny Llama for provenance tests."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

PROMPT = "Return the number of items in the container."


def make_sae(lm, hook: str, d_sae: int, *, seed: int, arch: str = "standard", k: int | None = None,
             scale: float | None = None) -> SparseAutoencoder:
    cfg = SAEConfig(d_in=lm.d_model, d_sae=d_sae, architecture=arch, k=k, hook_name=hook, model_id=lm.model_id,
                    normalize_activations="none" if scale is None else "expected_average_only_in",
                    norm_scale=1.0 if scale is None else scale)
    sae = SparseAutoencoder(cfg)
    sae.reset_parameters(seed=seed)
    return sae


def activations(lm, text: str, hook: str) -> torch.Tensor:
    """``[pos d_model]`` at ``hook`` on ``text`` (BOS first, as every endpoint feeds text; computed by hand)."""
    ids = torch.tensor([[lm.tokenizer.bos_token_id] + lm.tokenizer(text, add_special_tokens=False)["input_ids"]])
    return run_with_cache(lm.model, ids, [hook]).cache[hook][0]


class Pair:
    """Feature A (layer-0 SAE at blocks.0.hook_resid_post) writes exactly into feature B's encoder
    direction (layer-1 SAE at blocks.1.hook_resid_pre, the same residual tensor): a linear hop."""

    A, B = 3, 5

    def __init__(self, state) -> None:
        lm = state.lm
        x0 = activations(lm, PROMPT, "blocks.0.hook_resid_post")
        pos = 4
        d = x0[pos] / x0[pos].norm()  # a direction A surely fires along on the prompt
        self.sae_a = make_sae(lm, "blocks.0.hook_resid_post", 16, seed=1, scale=2.0)
        self.sae_b = make_sae(lm, "blocks.1.hook_resid_pre", 8, seed=2, scale=0.5)
        with torch.no_grad():
            self.sae_a.W_dec[self.A] = d
            self.sae_a.W_enc[:, self.A] = d
            self.sae_a.b_dec.copy_(0.01 * torch.randn(lm.d_model))
            self.sae_b.W_enc[:, self.B] = d
            self.sae_b.b_dec.copy_(0.01 * torch.randn(lm.d_model))
            self.sae_b.b_enc[self.B] = -0.02
        self.id_a = state.saes.register(self.sae_a, source="imported")
        self.id_b = state.saes.register(self.sae_b, source="imported")


@pytest.fixture
def pair(state) -> Pair:
    return Pair(state)


@pytest.fixture
def stack(state) -> list[str]:
    """Three random-unit SAEs at blocks.{0,1,2}.hook_resid_post (ids, layer 0 first)."""
    lm = state.lm
    return [state.saes.register(make_sae(lm, f"blocks.{i}.hook_resid_post", 32, seed=10 + i, arch="topk", k=8),
                                source="imported") for i in range(3)]
