from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import Invalid
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("contrast", help="features of an SAE that separate two prompt sets (and a group patch)")
    p.add_argument("--sae", required=True, help="SAE id")
    p.add_argument("--positive", required=True, help="file of texts with the behaviour (.txt one per line, or .jsonl with 'text')")
    p.add_argument("--negative", required=True, help="file of texts without it")
    p.add_argument("--position", choices=["last", "all", "max"], default="last")
    p.add_argument("--top-n", type=int, default=20)
    p.add_argument("--patch-top", type=int, default=0, metavar="N", help="also create a group patch over the top N features")
    p.add_argument("--patch-mode", choices=["ablate", "scale", "steer", "clamp"], default="ablate")
    p.add_argument("--json", action="store_true")
    add_model_args(p)
    p.set_defaults(func=run)


def read_texts(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise Invalid(f"{path} does not exist")
    lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    if p.suffix == ".jsonl":
        return [str(json.loads(ln)["text"]) for ln in lines]
    return lines


def run(args: argparse.Namespace) -> int:
    state = make_state(args)
    r = state.contrast.contrast(args.sae, read_texts(args.positive), read_texts(args.negative), args.position, args.top_n)
    patch = None
    if args.patch_top > 0:
        feats = [f.index for f in r.features[: args.patch_top]]
        patch = state.patches.create(sae_id=args.sae, features=feats, mode=args.patch_mode,
                                     name=f"group {args.patch_mode} of {len(feats)} contrast features").to_dict()
    if args.json:
        print(json.dumps({"hook_name": r.hook_name, "n_positive": r.n_positive, "n_negative": r.n_negative,
                          "features": [f._asdict() for f in r.features], "patch": patch}, indent=2))
        return 0
    print(f"{r.hook_name}: {r.n_positive} positive vs {r.n_negative} negative samples ({args.position})")
    print(f"{'feature':>7}  {'d':>7}  {'Δmean':>8}  {'rate+':>6}  {'rate-':>6}  label")
    for f in r.features:
        print(f"{f.index:>7}  {f.effect_size:7.3f}  {f.mean_diff:8.4f}  {f.positive_rate:6.2f}  {f.negative_rate:6.2f}  {f.label or ''}")
    if patch:
        print(f"created patch {patch['id']} ({patch['name']})")
    return 0
