"""Recording throughput: layer 6 of the default model with stop-at-layer vs a full forward.

    python bench/activations.py [--tokens 8192] [--context-size 128]
Prints tokens/s for both, measured in the same run, and last the ratio (expected >= 3x).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from interpretability_workbench.activations.corpus import load_texts, make_contexts
from interpretability_workbench.activations.store import iter_activations
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.model.loader import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--context-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--layer", type=int, default=6)
    a = p.parse_args()
    home = Path(os.environ.get("IWB_HOME", Path(__file__).resolve().parents[1] / "workspace"))
    lm = load_model("default", cache_dir=home / "models")
    n_ctx = a.tokens // a.context_size
    ctx = make_contexts(lm.tokenizer, load_texts(None), a.context_size, max_contexts=n_ctx)
    hook = f"blocks.{a.layer}.hook_resid_post"
    # warm-up
    run_with_cache(lm.model, ctx[:2].to(lm.device), [hook])

    t0 = time.perf_counter()
    n = sum(b[hook].shape[0] for b in iter_activations(lm, ctx, [hook], batch_size=a.batch_size, exclude_first=False))
    t_stop = time.perf_counter() - t0

    t0 = time.perf_counter()
    m = 0
    with torch.no_grad():
        for i in range(0, ctx.shape[0], a.batch_size):
            res = run_with_cache(lm.model, ctx[i:i + a.batch_size].to(lm.device), [hook], stop_at_layer=False)
            m += res.cache[hook].shape[0] * res.cache[hook].shape[1]
    t_full = time.perf_counter() - t0
    assert n == m
    print(f"model {lm.model_id} on {lm.device}, {n} tokens, hook {hook}, torch threads {torch.get_num_threads()}")
    print(f"full forward:        {m / t_full:9.1f} tok/s")
    print(f"stop at layer {a.layer}:     {n / t_stop:9.1f} tok/s")
    print(f"ratio stop-at-layer / full forward: {t_full / t_stop:.2f}x")


if __name__ == "__main__":
    main()
