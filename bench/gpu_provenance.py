"""GPU provenance at the Llama-3.1-8B shape (random bf16 weights made on the GPU): a depth-2 graph over three
65,536-feature TopK SAEs (random unit decoder rows, k 64, float32 on the GPU) at blocks.{8,12,16}.hook_resid_post,
with a 64-token prompt: spliced forward to the target's layer, one backward per expanded node, batched
ablation checks (top_k 5, validate 8) and downstream logits. Baseline in the same run: one full forward of
the prompt. Target: graph time <= 10x one forward. The last line is the ratio.

    python bench/gpu_provenance.py
    python bench/gpu_provenance.py --device cpu --shape tiny --d-sae 512 --layers 0,1,2    # smoke
"""
from __future__ import annotations

import argparse
import json

import torch

from gpu_common import default_device, device_name, median, prompt_ids, random_llama, random_sae, timed
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.provenance.graph import build_graph
from interpretability_workbench.provenance.types import GraphOptions, SAERef


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=default_device())
    ap.add_argument("--shape", default="llama-3.1-8b")
    ap.add_argument("--d-sae", type=int, default=65_536)
    ap.add_argument("--layers", default="8,12,16")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    lm = random_llama(a.shape, a.device, torch.bfloat16)
    layers = [int(x) for x in a.layers.split(",")]
    refs = [SAERef(f"random-L{layer}", random_sae(lm, layer, a.d_sae, k=64, seed=i), f"blocks.{layer}.hook_resid_post")
            for i, layer in enumerate(layers)]
    target, upstream = refs[-1], refs[:-1]
    ids = prompt_ids(lm, a.tokens)
    with torch.no_grad():
        x = run_with_cache(lm.model, ids, [target.hook_name]).cache[target.hook_name][0]
        feature = int(target.sae.encode(x)[1:].sum(0).argmax())
    opts = GraphOptions(top_k=5, validate=8)
    holder = {}

    def graph() -> None:
        holder["g"] = build_graph(lm.model, lm.tokenizer, target, feature, upstream, input_ids=ids, options=opts,
                                  n_layers=lm.n_layers)

    def forward() -> None:
        with torch.no_grad():
            lm.model(input_ids=ids, use_cache=False)

    print(f"device {device_name(lm.device)}; {a.shape} bf16 (built in {lm.load_seconds:.1f} s); prompt {a.tokens} "
          f"tokens; SAEs of {a.d_sae} features at layers {layers}; target feature {feature}")
    t_fwd = median(timed(forward, lm.device, repeats=max(5, a.repeats), warmup=2))
    t_graph = median(timed(graph, lm.device, repeats=a.repeats, warmup=1))
    g = holder["g"]
    n_feat = len([n for n in g.nodes if n.kind != "logit"])
    corr = g.validation.correlation if g.validation else None
    print(f"graph: {t_graph * 1000:.1f} ms ({n_feat} feature nodes, {len(g.edges)} edges, validation correlation "
          f"{corr if corr is None else round(corr, 3)}); one forward: {t_fwd * 1000:.1f} ms")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"device": device_name(lm.device), "graph_ms": t_graph * 1000, "forward_ms": t_fwd * 1000,
                       "ratio": t_graph / t_fwd, "nodes": n_feat, "edges": len(g.edges), "correlation": corr}, fh,
                      indent=2)
    print(f"ratio: graph / forward {t_graph / t_fwd:.1f}x (target <= 10x)")


if __name__ == "__main__":
    main()
