"""Shared fixtures: tiny random models built in-process (saved with save_pretrained, loaded through the
real loader), a tiny byte-level BPE tokenizer trained on the built-in corpus, a WorkbenchState over a temp
workspace, a TestClient, and (integration) the embedded default model."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from interpretability_workbench.activations.corpus import load_texts

REPO = Path(__file__).resolve().parents[1]
# the workspace the Makefile prepares (dequantized default model cached there)
DEFAULT_HOME = Path(os.environ.get("IWB_HOME", REPO / "workspace"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are collected everywhere and skipped where CUDA is not available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device: run scripts/gpu_check.sh (pytest -m gpu) on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    texts = load_texts(None)[:400]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=512, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    d = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(d)
    return d


def _save_tiny(kind: str, root: Path, tok_dir: Path) -> Path:
    from transformers import (AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM,
                              LlamaConfig, LlamaForCausalLM)

    torch.manual_seed(1234)
    vocab = 512
    if kind == "llama":
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
        model = LlamaForCausalLM(cfg)
    elif kind == "gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_embd=64, n_layer=3, n_head=4, n_positions=256, bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(cfg)
    elif kind == "neox":
        cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                            num_attention_heads=4, max_position_embeddings=256, bos_token_id=0, eos_token_id=0)
        model = GPTNeoXForCausalLM(cfg)
    else:  # pragma: no cover
        raise ValueError(kind)
    d = root / f"tiny-{kind}"
    model.save_pretrained(d)
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {k: _save_tiny(k, root, tiny_tokenizer_dir) for k in ("llama", "gpt2", "neox")}


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_model_dirs: dict[str, Path]) -> Path:
    return tiny_model_dirs["llama"]


@pytest.fixture(scope="session")
def tiny_lm(tiny_llama_dir: Path):
    from interpretability_workbench.model.loader import load_model

    return load_model(str(tiny_llama_dir), device="cpu", dtype="float32")


@pytest.fixture
def settings(tmp_path: Path, tiny_llama_dir: Path):
    from interpretability_workbench.settings import Settings

    return Settings(home=tmp_path / "home", model=str(tiny_llama_dir), device="cpu", dtype="float32")


@pytest.fixture
def state(settings):
    """A WorkbenchState over a temp workspace with the tiny Llama loaded."""
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(settings)
    st.load_model(settings.model)
    yield st
    shutdown = getattr(st, "shutdown", None)
    if shutdown:
        shutdown()
    st.close()


@pytest.fixture
def client(state):
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app

    app = create_app(state.settings, state, load_model=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def default_lm():
    """The embedded default model (SmolLM2-135M-Instruct), from the workspace's safetensors cache."""
    from interpretability_workbench.model.loader import load_model

    return load_model("default", device="cpu", dtype="float32", cache_dir=DEFAULT_HOME / "models")
