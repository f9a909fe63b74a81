"""``microscope trace-circuit`` and ``microscope train-transcoders``: prompt attribution graphs over
transcoders, and the transcoder sets they need, from the command line (same services as the server)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..circuits.service import CircuitSettings
from ..errors import Invalid
from ..events import Event, TrainingProgress
from ..training.transcoder_config import TranscoderTrainingConfig
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace-circuit", help="trace a prompt's attribution graph over a transcoder set")
    p.add_argument("--prompt", required=True, help="the prompt (BOS is put first)")
    p.add_argument("--transcoders", default=None, help="transcoder set id (default: the newest set of the model)")
    p.add_argument("--max-feature-nodes", type=int, default=512, help="feature nodes that get rows (default 512)")
    p.add_argument("--max-logits", type=int, default=10, help="most logit nodes (default 10)")
    p.add_argument("--target", default=None,
                   help="a next token the graph must explain, e.g. ' Paris' (a logit node whatever its probability)")
    p.add_argument("--batch-size", type=int, default=64, help="targets per backward pass (default 64)")
    p.add_argument("--node-threshold", type=float, default=0.8, help="pruning: node influence share (default 0.8)")
    p.add_argument("--edge-threshold", type=float, default=0.98, help="pruning: edge influence share (default 0.98)")
    p.add_argument("--validate", type=int, default=20, help="strongest edges checked by intervention (default 20)")
    p.add_argument("--freeze", choices=("none", "attention", "direct"), default="attention",
                   help="what the check holds fixed in the model (default attention)")
    p.add_argument("--export", type=Path, default=None, help="write circuit-tracer's graph JSON here")
    p.add_argument("--json", action="store_true", help="print the circuit row as JSON")
    add_model_args(p)
    p.set_defaults(func=run_trace)

    t = sub.add_parser("train-transcoders", help="train one transcoder per layer (skip transcoders, TopK by default)")
    t.add_argument("--layers", default="all", help="comma-separated layers or 'all' (default all)")
    t.add_argument("--d-tc", type=int, default=2304, help="latents per transcoder (default 2304)")
    t.add_argument("--architecture", choices=("topk", "jumprelu"), default="topk")
    t.add_argument("--k", type=int, default=32, help="active latents per token (default 32)")
    t.add_argument("--no-skip", action="store_true", help="no linear skip term")
    t.add_argument("--tokens", type=int, default=200_000, help="training tokens (default 200000)")
    t.add_argument("--batch-size", type=int, default=1024, help="tokens per step (default 1024)")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default 8e-4/sqrt(d_tc/4096))")
    t.add_argument("--corpus", default="default", help="corpus id (default: the built-in corpus)")
    t.add_argument("--name", default=None, help="name of the set")
    add_model_args(t)
    t.set_defaults(func=run_train)


def _progress(ev: Event) -> None:
    if isinstance(ev, TrainingProgress) and ev.tokens:
        fvu = f"{ev.fvu:.3f}" if ev.fvu is not None else "-"
        print(f"\r{ev.phase}: {ev.tokens}/{ev.total_tokens} tokens, FVU {fvu}, L0 {ev.l0 or 0:.1f}   ",
              end="", file=sys.stderr, flush=True)


def run_train(args: argparse.Namespace) -> int:
    state = make_state(args)
    try:
        lm = state.require_model()
        layers = list(range(lm.n_layers)) if args.layers == "all" else [int(x) for x in args.layers.split(",") if x.strip()]
        cfg = TranscoderTrainingConfig(layers=layers, d_tc=args.d_tc, architecture=args.architecture, k=args.k,
                                       skip=not args.no_skip, total_tokens=args.tokens, batch_size=args.batch_size,
                                       lr=args.lr, corpus=args.corpus, name=args.name)
        remove = state.bus.add_callback(_progress)
        rid = state.transcoder_training.start(cfg)
        rec = state.transcoder_training.wait(rid)
        remove()
        print(file=sys.stderr)
    finally:
        state.shutdown()
        state.close()
    if rec.status != "done":
        print(f"error: run {rid} {rec.status}: {rec.error}", file=sys.stderr)
        return 1
    m = rec.metrics or {}
    print(f"transcoder set {m['set_id']} (run {rid}): held-out FVU {m['held_out_fvu']:.3f}, L0 {m['l0']:.1f}, "
          f"CE loss recovered {m['ce_loss_recovered']:.3f} with every MLP replaced")
    return 0


def run_trace(args: argparse.Namespace) -> int:
    state = make_state(args)
    try:
        lm = state.require_model()
        set_id = args.transcoders
        if set_id is None:
            sets = [s for s in state.transcoders.list() if s.model_id == lm.model_id]
            if not sets:
                raise Invalid("no transcoder set for this model; train one with `microscope train-transcoders`")
            set_id = sets[-1].id
        settings = CircuitSettings(set_id=set_id, max_feature_nodes=args.max_feature_nodes,
                                   max_n_logits=args.max_logits, target=args.target, batch_size=args.batch_size,
                                   node_threshold=args.node_threshold, edge_threshold=args.edge_threshold,
                                   validate_edges=args.validate, validate_freeze=args.freeze)
        rec = state.circuits.trace(args.prompt, settings)
        if rec.status == "done" and args.export is not None:
            args.export.write_text(json.dumps(state.circuits.export(rec.id, "circuit-tracer")))
    finally:
        state.close()
    if rec.status != "done":
        print(f"error: circuit {rec.id} {rec.status}: {rec.error}", file=sys.stderr)
        return 1
    s = rec.summary
    if args.json:
        print(json.dumps({"id": rec.id, "prompt": rec.prompt, "settings": rec.settings, "summary": s}, indent=2))
        return 0
    v = s.get("validation") or {}
    print(f"circuit {rec.id}: {s['n_tokens']} tokens, {s['n_active_features']} active features, "
          f"{s['n_features']} feature nodes; pruned {s['n_pruned_nodes']} nodes / {s['n_pruned_edges']} edges")
    print(f"replacement {s['replacement_score']:.3f}  completeness {s['completeness_score']:.3f}  "
          f"graph {s['graph_seconds']:.1f} s")
    if v:
        r = v.get("pearson")
        print(f"intervention check ({v['freeze']}, {len(v['checks'])} edges): r = "
              f"{'n/a' if r is None else format(r, '.3f')}, sign agreement {v.get('sign_agreement')}")
    print("top logits:", ", ".join(f"{x['token']!r} {x['probability']:.3f}" for x in s["logits"][:5]))
    if args.export is not None:
        print(f"wrote {args.export}")
    return 0
