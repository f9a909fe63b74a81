"""Benchmark: a depth-2 provenance graph vs one plain forward, same prompt, same run.

Default model (SmolLM2-135M), a 64-token prompt from the built-in corpus, three SAEs of 4608 features at
blocks.{2,4,6}.hook_resid_post. The SAEs are random (unit decoder rows, encoder = decoder transpose,
TopK k=32), not trained: the cost of the graph does not depend on what the features mean.
Graph = spliced forward to layer 6 + one backward per expanded node + batched ablation checks
(top_k 5, validate 8) + downstream logits. Prints both times and, last, graph time / forward time.

    IWB_HOME=workspace .venv/bin/python bench/provenance.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interpretability_workbench.activations.corpus import load_texts  # noqa: E402
from interpretability_workbench.model.loader import load_model  # noqa: E402
from interpretability_workbench.provenance.graph import build_graph  # noqa: E402
from interpretability_workbench.provenance.types import GraphOptions, SAERef  # noqa: E402
from interpretability_workbench.sae.config import SAEConfig  # noqa: E402
from interpretability_workbench.sae.model import SparseAutoencoder  # noqa: E402

N_TOKENS, D_SAE, LAYERS, REPEATS = 64, 4608, (2, 4, 6), 5


def timed(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    torch.manual_seed(0)
    home = Path(os.environ.get("IWB_HOME", ROOT / "workspace"))
    lm = load_model("default", device="cpu", dtype="float32", cache_dir=home / "models")
    text = " ".join(load_texts(None)[:50])
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"][:, :N_TOKENS]
    assert ids.shape[1] == N_TOKENS
    refs = []
    for i, layer in enumerate(LAYERS):
        hook = f"blocks.{layer}.hook_resid_post"
        sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=D_SAE, architecture="topk", k=32,
                                          hook_name=hook, model_id=lm.model_id)).eval()
        sae.reset_parameters(seed=i)
        for p in sae.parameters():
            p.requires_grad_(False)
        refs.append(SAERef(f"random-L{layer}", sae, hook))
    target, upstream = refs[-1], refs[:-1]
    with torch.no_grad():
        from interpretability_workbench.model.hooks import run_with_cache
        x = run_with_cache(lm.model, ids, [target.hook_name]).cache[target.hook_name][0]
        feature = int(target.sae.encode(x)[1:].sum(0).argmax())
    opts = GraphOptions(top_k=5, validate=8)
    holder = {}

    def graph() -> None:
        holder["g"] = build_graph(lm.model, lm.tokenizer, target, feature, upstream, input_ids=ids, prompt=text,
                                  options=opts, n_layers=lm.n_layers)

    def forward() -> None:
        with torch.no_grad():
            lm.model(input_ids=ids, use_cache=False)

    print(f"torch threads: {torch.get_num_threads()}; prompt {N_TOKENS} tokens; SAEs {D_SAE} features at "
          f"layers {LAYERS} (random unit, TopK k=32); target feature {feature}")
    t_fwd = timed(forward)
    t_graph = timed(graph)
    t_fwd2 = timed(forward)  # again after, in case the machine's load changed
    t_fwd = min(t_fwd, t_fwd2)
    g = holder["g"]
    feats = [n for n in g.nodes if n.kind != "logit"]
    print(f"graph: {len(feats)} feature nodes over layers {sorted({n.layer for n in feats})}, "
          f"{sum(1 for e in g.edges if not e.target.startswith('logit'))} edges, "
          f"{len(g.validation.edges)} validated, correlation {g.validation.correlation}")
    print(f"plain forward (full model, {N_TOKENS} tokens): {t_fwd * 1000:.1f} ms")
    print(f"depth-2 provenance graph: {t_graph * 1000:.1f} ms")
    print(f"graph / forward: {t_graph / t_fwd:.2f}")


if __name__ == "__main__":
    main()
