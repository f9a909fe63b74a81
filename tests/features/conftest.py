"""Fixtures for the feature-explorer tests: hand-built SAEs on the tiny Llama, registered on the state."""
from __future__ import annotations

from typing import Callable

import pytest
import torch

from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder
from workbench_fixtures import workbench_client, workbench_state

HOOK = "blocks.1.hook_resid_post"
N_TOKENS = 1260  # 20 contexts of 64 (63 analysed positions each)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir):
    """One WorkbenchState (tiny Llama) per test module: the tokenized corpus and analyses are reused."""
    yield from workbench_state(tmp_path_factory.mktemp("fhome"), tiny_llama_dir, "float32")


@pytest.fixture(scope="module")
def client(state):
    yield from workbench_client(state)


@pytest.fixture(scope="module")
def make_sae(state) -> Callable[..., tuple[str, SparseAutoencoder]]:
    """Build an SAE for the loaded tiny model (random unit-norm decoder), register it, return (id, sae)."""

    def make(architecture: str = "topk", d_sae: int = 128, k: int = 8, hook: str = HOOK, seed: int = 0,
             model_id: str | None = None, d_in: int | None = None,
             edit: Callable[[SparseAutoencoder], None] | None = None) -> tuple[str, SparseAutoencoder]:
        lm = state.require_model()
        cfg = SAEConfig(d_in=d_in or lm.d_model, d_sae=d_sae, architecture=architecture, k=k, hook_name=hook,
                        model_id=lm.model_id if model_id is None else model_id, context_size=64,
                        apply_b_dec_to_input=False)
        sae = SparseAutoencoder(cfg)
        sae.reset_parameters(seed=seed)
        with torch.no_grad():
            sae.b_enc.fill_(-0.05 if architecture == "standard" else 0.0)
            if edit is not None:
                edit(sae)
        return state.saes.register(sae, source="imported"), sae

    return make


@pytest.fixture(scope="module")
def analysed(state, make_sae):
    """A TopK SAE analysed synchronously on the held-out split (first N_TOKENS tokens)."""
    sae_id, sae = make_sae()
    state.features.analyze(sae_id, n_tokens=N_TOKENS)
    return sae_id, state.saes.get(sae_id).sae
