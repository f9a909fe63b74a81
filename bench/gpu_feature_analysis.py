"""GPU feature analysis at the Llama-3.1-8B shape (random bf16 weights made on the GPU): a 65,536-feature TopK
SAE (k 64, random unit decoder rows) at the middle layer (blocks.16.hook_resid_post), analysed over 1M tokens
(contexts of 128 random token ids, position 0 excluded) with ``run_analysis`` — the model forwards, encode and
streaming statistics, example windows, ``W_dec·W_U`` logit effects, neighbours and the rows.
Baseline in the same run: recording those tokens — the same forwards to the same layer, batch for batch,
activations produced (float32 on the device) and nothing else. Target: analysis <= 1.5x recording.
The last line is the ratio.

    python bench/gpu_feature_analysis.py
    python bench/gpu_feature_analysis.py --device cpu --shape tiny --d-sae 2048 --tokens 20000   # smoke
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch

from gpu_common import default_device, device_name, random_llama, random_sae, sync
from interpretability_workbench.features.analysis import AnalysisConfig, fold_batch, run_analysis
from interpretability_workbench.features.stats import FeatureStats
from interpretability_workbench.model.hooks import run_with_cache

CTX = 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=default_device())
    ap.add_argument("--shape", default="llama-3.1-8b")
    ap.add_argument("--d-sae", type=int, default=65_536)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=1_000_000, help="analysed tokens (position 0 excluded)")
    ap.add_argument("--batch-contexts", type=int, default=32, help="contexts per forward (both runs)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    lm = random_llama(a.shape, a.device, torch.bfloat16)
    layer = lm.n_layers // 2
    hook = f"blocks.{layer}.hook_resid_post"
    sae = random_sae(lm, layer, a.d_sae, k=a.k)
    n_ctx = math.ceil(a.tokens / (CTX - 1))
    g = torch.Generator().manual_seed(0)
    contexts = torch.randint(1, lm.vocab_size, (n_ctx, CTX), generator=g)
    contexts[:, 0] = lm.tokenizer.bos_token_id
    vocab = [f"t{i}" for i in range(lm.vocab_size)]
    cfg = AnalysisConfig(batch_size=a.batch_contexts)
    print(f"device {device_name(lm.device)}; {a.shape} bf16 (built in {lm.load_seconds:.1f} s); SAE {a.d_sae} "
          f"features (k {a.k}) at {hook}; {n_ctx} contexts x {CTX} = {n_ctx * (CTX - 1):,} analysed tokens")

    def record() -> float:
        sync(lm.device)
        t0 = time.perf_counter()
        for i in range(0, n_ctx, a.batch_contexts):
            with torch.no_grad():
                act = run_with_cache(lm.model, contexts[i: i + a.batch_contexts].to(lm.device), [hook]).cache[hook]
                act[:, 1:].reshape(-1, act.shape[-1]).float()
        sync(lm.device)
        return time.perf_counter() - t0

    # warm-up: kernels and the allocator, one batch through the model and the analysis's per-batch step
    with torch.no_grad():
        act = run_with_cache(lm.model, contexts[: a.batch_contexts].to(lm.device), [hook]).cache[hook]
        fold_batch(sae, act[:, 1:].reshape(-1, act.shape[-1]).float(), FeatureStats(a.d_sae, device=lm.device), None,
                   0, a.batch_contexts, CTX, 0)
    t_rec = record()
    sync(lm.device)
    t0 = time.perf_counter()
    res = run_analysis(lm, sae, contexts, vocab, cfg)
    sync(lm.device)
    t_an = time.perf_counter() - t0
    t = res.timings
    rows_s = t.total_s - t.forward_s - t.encode_stats_s - t.windows_s - t.weights_s
    n = res.summary["n_tokens"]
    print(f"recording: {t_rec:.2f} s ({n / t_rec:,.0f} tokens/s)")
    print(f"analysis:  {t_an:.2f} s = forward {t.forward_s:.2f} + encode/statistics {t.encode_stats_s:.2f} + windows "
          f"{t.windows_s:.2f} + logit effects/neighbours {t.weights_s:.2f} + rows {rows_s:.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"device": device_name(lm.device), "tokens": n, "recording_s": t_rec, "analysis_s": t_an,
                       "timings": t._asdict(), "rows_s": rows_s, "ratio": t_an / t_rec}, fh, indent=2)
    print(f"ratio: analysis / recording {t_an / t_rec:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
