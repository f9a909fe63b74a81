from __future__ import annotations

import argparse
import json

from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="prepare or describe a model")
    msub = p.add_subparsers(dest="model_cmd", metavar="ACTION")
    prep = msub.add_parser("prepare", help="load once so GGUF weights are dequantized and cached")
    add_model_args(prep)
    prep.set_defaults(func=run_info)
    info = msub.add_parser("info", help="print the model's architecture, sizes and hook points as JSON")
    add_model_args(info)
    info.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    state = make_state(args)
    info = state.model.info()
    if args.model_cmd == "prepare":
        print(f"ready: {info['model_id']} ({info['architecture']}, {info['n_layers']} layers, "
              f"d_model {info['d_model']}) on {info['device']} in {info['load_seconds']:.1f}s")
    else:
        print(json.dumps(info, indent=2))
    return 0
