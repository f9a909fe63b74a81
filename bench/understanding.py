"""Understanding thousands of features: feature-map time and the synthetic ground-truth check.

Sections (run in this order; ``--only`` picks some):

- ``map``: ``features.map.feature_map`` on random unit directions of width 576 (the default model's
  d_model): first a tiny warm-up map that pays numba's one-off JIT compilation of umap-learn/pynndescent
  (reported on its own: a long-lived worker pays it once), then 4608 and 65,536 directions with the default
  parameters (65,536: NN-descent neighbours, PCA init, 100 epochs; see the module). The target is
  <= 180 s for 65,536 directions on this machine's CPU; the line prints time / target.
- ``synthetic``: planted sparse features (power-law frequencies, correlated groups) at two sizes, the same
  data for both trainers: ours (the product's TopK step: sparse kernels + AuxK, ``evals.synthetic.train_topk``)
  and the dense reference (``train_dense_reference``: the same objective with a dense ``[batch d_sae]`` code
  matrix and plain autograd, same init, batches, optimiser and schedule). Prints MCC (Hungarian mean
  matched cosine), F1 at cosine 0.9 and tokens/s of each. The baseline is that dense reference trainer;
  the last line is ours / dense tokens/s at the larger size (with the MCC of each).

Other sections of this bench (explanation timing, detection scoring) are owned elsewhere and register in
``SECTIONS`` below.

Run: ``.venv/bin/python bench/understanding.py [--only map synthetic] [--map-sizes 4608 65536] [--threads 1]``
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from interpretability_workbench.evals.synthetic import SyntheticTrainConfig, synthetic_ground_truth  # noqa: E402
from interpretability_workbench.evals.synthetic_data import SyntheticConfig  # noqa: E402
from interpretability_workbench.features.map import feature_map, warm_up  # noqa: E402

MAP_D_IN = 576
MAP_TARGET_S = 180.0

SYNTHETIC_SIZES = {
    # name: (data, train) — "small" is the unit-test setting; "medium" has product-like sparse kernels work
    "small": (SyntheticConfig(), SyntheticTrainConfig()),
    "medium": (SyntheticConfig(d_in=128, n_features=512, mean_l0=6, n_tokens=262_144),
               SyntheticTrainConfig(d_sae=768, k=8, lr=3e-3, batch_size=1024, epochs=3)),
}


def load_line() -> str:
    try:
        return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:  # pragma: no cover
        return ""


def bench_map(args: argparse.Namespace, results: dict) -> None:
    t = warm_up()
    print(f"map warm-up (numba JIT, once per process): {t:.1f}s   [{load_line()}]", flush=True)
    for n in args.map_sizes:
        w = torch.randn(n, MAP_D_IN, generator=torch.Generator().manual_seed(n))
        t0 = time.perf_counter()
        fmap = feature_map(w, seed=0)
        dt = time.perf_counter() - t0
        p = fmap.params
        results[f"map_{n}_s"] = dt
        print(f"map {n:6d} x {MAP_D_IN}: {dt:7.1f}s  (epochs {p.n_epochs}, init {p.init}, {fmap.n_clusters} clusters)"
              f"  time/target {dt / MAP_TARGET_S:.2f}   [{load_line()}]", flush=True)


def bench_synthetic(args: argparse.Namespace, results: dict) -> None:
    for name in args.synthetic_sizes:
        data, train = SYNTHETIC_SIZES[name]
        r = synthetic_ground_truth(data, train, reference=True)
        assert r.reference is not None
        d_sae = train.d_sae or round(1.5 * data.n_features)
        print(f"synthetic {name}: d_in {data.d_in}, {data.n_features} true features, d_sae {d_sae}, k {train.k}, "
              f"{data.n_tokens * train.epochs} training tokens, true L0 {r.true_mean_l0:.2f}, "
              f"MCC at init {r.mcc_at_init:.3f}   [{load_line()}]", flush=True)
        for rep in (r.ours, r.reference):
            print(f"  {rep.name:16s} MCC {rep.mcc:.3f}  F1@{r.threshold} {rep.f1:.3f}  FVU {rep.fvu:.3f}  "
                  f"dead {rep.dead_fraction:.2f}  {rep.tokens_per_s:9.0f} tokens/s", flush=True)
        results[f"synthetic_{name}"] = r


SECTIONS: dict[str, Callable[[argparse.Namespace, dict], None]] = {
    "map": bench_map,
    "synthetic": bench_synthetic,
    # explanation timing and detection sections register here (owned by their engineer)
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    ap.add_argument("--map-sizes", nargs="+", type=int, default=[4608, 65_536])
    ap.add_argument("--synthetic-sizes", nargs="+", choices=sorted(SYNTHETIC_SIZES), default=["small", "medium"])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine two threads oversubscribe the CPU "
                         "and the small matmuls of these trainers run several times slower)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {load_line()}", flush=True)
    results: dict = {}
    for name in args.only:
        SECTIONS[name](args, results)
    syn = [results[k] for k in (f"synthetic_{s}" for s in ("medium", "small")) if k in results]
    if syn:
        r = syn[0]
        print(f"ours MCC {r.ours.mcc:.3f} vs dense reference MCC {r.reference.mcc:.3f}; "
              f"ours tokens/s / dense reference tokens/s = {r.ours.tokens_per_s / r.reference.tokens_per_s:.2f}")
    elif "map_65536_s" in results:
        print(f"map 65536 time / {MAP_TARGET_S:.0f}s target = {results['map_65536_s'] / MAP_TARGET_S:.2f}")


if __name__ == "__main__":
    main()
