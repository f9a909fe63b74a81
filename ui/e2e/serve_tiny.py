#!/usr/bin/env python3
"""Serve the real workbench on a tiny random Llama (or the default model), for the browser end-to-end suite.

    .venv/bin/python ui/e2e/serve_tiny.py [--port 8765] [--work DIR] [--model none|tiny|default] [--models DIR]

The first run in DIR (default $E2E_WORK_DIR, else ui/test-results/e2e-work) trains a byte-level BPE tokenizer
(vocab 512) on the built-in corpus and saves a random 4-layer Llama (d_model 64) with save_pretrained into
DIR/tiny-llama; later runs reuse it. The workspace (IWB_HOME) is DIR/home, so a restarted server sees the
same SAEs, runs and patches. The server starts without a model (--model none, the default): the suite loads
DIR/tiny-llama through the Model page. Nothing is downloaded.

For the walk on the embedded default model (``make screenshots``): ``--model default --models $IWB_HOME/models``
links the prepared model cache (``microscope model prepare``) into the fresh workspace as its ``models``
folder, so the server loads the dequantized SmolLM2 at startup (and again after the restart step) without
converting it; the suite then loads ``default`` through the Model page as well.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

N_LAYERS, D_MODEL, VOCAB = 4, 64, 512


def build_tiny_llama(out: Path) -> Path:
    """Tokenizer + random Llama saved with save_pretrained (idempotent: an existing folder is reused)."""
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from interpretability_workbench.activations.corpus import load_texts

    texts = load_texts(None)[:400]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=VOCAB, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(1234)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=D_MODEL, intermediate_size=2 * D_MODEL,
                      num_hidden_layers=N_LAYERS, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    tmp = out.with_name(out.name + ".tmp")
    LlamaForCausalLM(cfg).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return out


def link_models(home: Path, models: Path) -> None:
    """Make ``home/models`` a link to ``models`` (the workspace's model cache), once; refuse another folder there."""
    if not models.is_dir():
        raise SystemExit(f"--models {models}: no such folder; run `microscope model prepare` first")
    target = home / "models"
    home.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() and target.resolve() == models:
        return
    if target.exists() or target.is_symlink():
        raise SystemExit(f"{target} already exists and is not a link to {models}; use a fresh --work folder")
    target.symlink_to(models, target_is_directory=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=int(os.environ.get("E2E_PORT", "8765")))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("E2E_WORK_DIR") or REPO / "ui" / "test-results" / "e2e-work"))
    p.add_argument("--model", default="none", choices=["none", "tiny", "default"],
                   help="'none' (load it from the UI), 'tiny' or 'default' (load at startup)")
    p.add_argument("--models", type=Path, default=None,
                   help="a prepared model cache (IWB_HOME/models) linked into the workspace as its models folder")
    a = p.parse_args(argv)
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    if a.models is not None:
        link_models(home, a.models.resolve())
    if a.model == "default":
        model = "default"
    else:
        model_dir = build_tiny_llama(work / "tiny-llama")
        print(f"tiny model: {model_dir}", flush=True)
        model = str(model_dir) if a.model == "tiny" else "none"
    os.environ.update({"IWB_HOME": str(home), "IWB_DEVICE": "cpu", "IWB_DTYPE": "float32"})
    from interpretability_workbench.server.main import serve

    return serve(host=a.host, port=a.port, model=model)


if __name__ == "__main__":
    raise SystemExit(main())
