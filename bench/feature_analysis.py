"""Feature analysis throughput: a 4608-feature TopK SAE (k=32, random init) at blocks.6.hook_resid_post of
the default model on the default analysis corpus (held-out split of the built-in corpus, contexts of 128).

Prints the whole analysis in tokens/s, its parts (model forward, encode + streaming statistics, example
windows, logit effects + neighbours), and the encoder roofline: a plain ``[n_tokens 576] @ [576 4608]``
matmul timed in the same run (in the analysis's batch size, best of 3). The last line is the streaming
analysis (encode + statistics, model forward excluded) as a percentage of that roofline.

Run: ``IWB_HOME=workspace .venv/bin/python bench/feature_analysis.py``
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("IWB_HOME", str(REPO / "workspace"))

from interpretability_workbench.activations.corpus import load_texts, make_contexts, split_contexts  # noqa: E402
from interpretability_workbench.features.analysis import AnalysisConfig, run_analysis  # noqa: E402
from interpretability_workbench.model.loader import load_model  # noqa: E402
from interpretability_workbench.sae.config import SAEConfig  # noqa: E402
from interpretability_workbench.sae.model import SparseAutoencoder  # noqa: E402
from interpretability_workbench.settings import Settings  # noqa: E402

D_SAE, K, LAYER, CTX = 4608, 32, 6, 128


def roofline(n_tokens: int, d_in: int, d_sae: int, batch: int) -> float:
    """Seconds for ``[n_tokens d_in] @ [d_in d_sae]`` in row batches of ``batch`` (best of 3)."""
    x = torch.randn(batch, d_in)
    w = torch.randn(d_in, d_sae)
    out = torch.empty(batch, d_sae)
    full, rest = divmod(n_tokens, batch)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(full):
            torch.mm(x, w, out=out)
        if rest:
            torch.mm(x[:rest], w)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    s = Settings()
    torch.manual_seed(0)
    lm = load_model("default", device="cpu", dtype="float32", cache_dir=s.model_cache_dir)
    contexts = split_contexts(make_contexts(lm.tokenizer, load_texts(None), CTX)).held_out
    sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=D_SAE, architecture="topk", k=K,
                                      hook_name=f"blocks.{LAYER}.hook_resid_post", model_id=lm.model_id,
                                      context_size=CTX))
    sae.reset_parameters(seed=0)
    sae.requires_grad_(False)
    vocab = lm.tokenizer.batch_decode([[i] for i in range(lm.vocab_size)])
    cfg = AnalysisConfig()
    res = run_analysis(lm, sae, contexts, vocab, cfg)
    t = res.timings
    n = res.summary["n_tokens"]
    mm = roofline(n, lm.d_model, D_SAE, cfg.batch_size * (CTX - 1))
    rows_s = t.total_s - t.forward_s - t.encode_stats_s - t.windows_s - t.weights_s
    print(f"corpus: {res.summary['n_contexts']} contexts x {CTX} = {n} analysed tokens; "
          f"d_sae {D_SAE}, k {K}, layer {LAYER}; {torch.get_num_threads()} threads")
    print(f"whole analysis: {t.total_s:.2f} s = {n / t.total_s:.0f} tokens/s")
    print(f"  model forward (to layer {LAYER}): {t.forward_s:.2f} s ({n / t.forward_s:.0f} tokens/s)")
    print(f"  encode + streaming statistics:     {t.encode_stats_s:.2f} s ({n / t.encode_stats_s:.0f} tokens/s)")
    print(f"  example windows:                   {t.windows_s:.2f} s")
    print(f"  logit effects + neighbours:        {t.weights_s:.2f} s")
    print(f"  rows (labels, JSON shapes):        {rows_s:.2f} s")
    print(f"analysis excluding the forward: {t.total_s - t.forward_s:.2f} s")
    print(f"roofline matmul [{n} {lm.d_model}] @ [{lm.d_model} {D_SAE}]: {mm:.3f} s")
    print(f"streaming analysis (encode + statistics) vs roofline: {100 * mm / t.encode_stats_s:.1f}%")


if __name__ == "__main__":
    main()
