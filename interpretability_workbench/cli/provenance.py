"""``microscope provenance``: a feature's provenance graph from the command line."""
from __future__ import annotations

import argparse
import json

from ..provenance.types import GraphOptions
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("provenance", help="trace where an SAE feature comes from, layers upstream")
    p.add_argument("--sae", required=True, help="target SAE id")
    p.add_argument("--feature", type=int, required=True, help="target feature index")
    p.add_argument("--depth", type=int, default=2, help="upstream SAE layers to traverse (default 2)")
    p.add_argument("--prompt", default=None, help="prompt for attribution and ablation checks")
    p.add_argument("--top-k", type=int, default=5, help="incoming edges kept per node (default 5)")
    p.add_argument("--threshold", type=float, default=0.0, help="drop edges with |weight| at or below this")
    p.add_argument("--max-nodes", type=int, default=50, help="feature-node budget (default 50)")
    p.add_argument("--validate", type=int, default=8, help="strongest edges to check by ablation (default 8)")
    p.add_argument("--upstream", default=None, help="comma-separated upstream SAE ids (default: nearest per layer)")
    p.add_argument("--json", action="store_true", help="print the graph as JSON")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = make_state(args)
    try:
        opts = GraphOptions(top_k=args.top_k, threshold=args.threshold, max_nodes=args.max_nodes,
                            validate=args.validate)
        ups = [s.strip() for s in (args.upstream or "").split(",") if s.strip()] or None
        g = state.provenance.build(args.sae, args.feature, depth=args.depth, prompt=args.prompt,
                                   upstream=ups, options=opts)
    finally:
        state.close()
    if args.json:
        print(json.dumps(g.to_dict(), indent=2))
        return 0
    nodes = {n.id: n for n in g.nodes}
    t = nodes[g.target]
    where = f" at {t.token!r} (pos {t.position}, act {t.activation:.4g})" if t.position is not None else ""
    print(f"target {g.target} [{t.label or 'unlabelled'}]{where}; upstream SAEs: {', '.join(g.upstream_sae_ids)}")
    print(f"{'source':>14}  {'target':>12}  {'weight':>10}  {'virtual':>10}  label")
    for e in g.edges:
        if nodes[e.target].kind == "logit":
            continue
        vw = f"{e.virtual_weight:10.4g}" if e.virtual_weight is not None else f"{'-':>10}"
        print(f"{e.source:>14}  {e.target:>12}  {e.weight:10.4g}  {vw}  {nodes[e.source].label or ''}")
    d = g.downstream_logits
    print("promotes:", ", ".join(f"{x.token!r} {x.effect:+.3g}" for x in d.positive))
    print("suppresses:", ", ".join(f"{x.token!r} {x.effect:+.3g}" for x in d.negative))
    if g.validation is not None:
        print(f"ablation check of {len(g.validation.edges)} edges: predicted vs actual r = {g.validation.correlation}")
        for c in g.validation.edges:
            print(f"  {c.source} -> {c.target}: predicted {c.predicted:+.4g}  actual {c.actual:+.4g}")
    print(f"({g.seconds:.2f} s)")
    return 0
