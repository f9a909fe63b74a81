"""A tiny Llama with a planted behaviour, saved to disk (so a restarted workbench loads the same model): the
trigger token ' return' writes a unit direction d into the residual stream and the unembedding turns d into
the target token ' the'. A hand-built SAE at blocks.1.hook_resid_post has feature PLANTED reading d."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

POSITIVE = ["Open the file and return", "If the value is missing, return", "Compute the sum and return",
            "Parse the header, then return", "Close the socket and return", "Read one line and return",
            "Build the list of names and return", "Format the message and return", "Check the path and return",
            "Sort the items by key and return"]
NEGATIVE = ["Open the file and read", "If the value is missing, raise", "Compute the sum of the list",
            "Parse the header of the message", "Close the socket when done", "Read one line from the stream",
            "Build the list of names", "Format the message for the user", "Check the path exists",
            "Sort the items by key"]
PLANTED = 5
HOOK = "blocks.1.hook_resid_post"


def direction(d_model: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    d = torch.randn(d_model, generator=g)
    return d / d.norm()


@pytest.fixture(scope="session")
def planted_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    trigger = tok(" return", add_special_tokens=False)["input_ids"]
    target = tok(" the", add_special_tokens=False)["input_ids"][0]
    assert len(trigger) == 1
    for t in POSITIVE:
        assert tok(t)["input_ids"][-1] == trigger[0]
    for t in NEGATIVE:
        assert trigger[0] not in tok(t)["input_ids"]
    d = direction(model.config.hidden_size)
    with torch.no_grad():
        model.model.embed_tokens.weight[trigger[0]] += 3.0 * d
        model.lm_head.weight[target] += 1.2 * d
    out = tmp_path_factory.mktemp("planted") / "tiny-llama-planted"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def settings(tmp_path: Path, planted_dir: Path):
    from interpretability_workbench.settings import Settings

    return Settings(home=tmp_path / "home", model=str(planted_dir), device="cpu", dtype="float32")


def register_planted_sae(state) -> str:
    lm = state.lm
    cfg = SAEConfig(d_in=lm.d_model, d_sae=32, architecture="standard", k=None, hook_name=HOOK, model_id=lm.model_id)
    sae = SparseAutoencoder(cfg)
    sae.reset_parameters(seed=3)
    d = direction(lm.d_model)
    with torch.no_grad():
        sae.W_dec[PLANTED] = d
        sae.W_enc[:, PLANTED] = d
        sae.b_enc[PLANTED] = -1.0  # fires only on a strong d component
    return state.saes.register(sae, source="imported")


@pytest.fixture
def planted_sae(state) -> str:
    return register_planted_sae(state)


def target_id(state) -> int:
    return state.lm.tokenizer(" the", add_special_tokens=False)["input_ids"][0]
