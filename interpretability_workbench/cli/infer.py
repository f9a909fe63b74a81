from __future__ import annotations

import argparse
import json

from ..errors import Invalid
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="next-token probabilities for a prompt, original vs patched")
    p.add_argument("--text", required=True, help="the prompt")
    p.add_argument("--top-k", type=int, default=10, help="how many tokens to show (default 10)")
    p.add_argument("--patch", action="append", default=None, metavar="ID",
                   help="stored patch to apply (repeatable); default: the enabled patches")
    p.add_argument("--patch-spec", action="append", default=[], metavar="SAE:FEATURES:MODE:STRENGTH",
                   help="ad-hoc patch, e.g. sae_ab12:3,7:ablate:1 or sae_ab12:5:steer:8 (repeatable; not stored)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_args(p)
    p.set_defaults(func=run)


def parse_spec(spec: str) -> tuple[str, list[int], str, float]:
    parts = spec.split(":")
    if len(parts) != 4:
        raise Invalid(f"--patch-spec {spec!r}: expected SAE_ID:FEATURES:MODE:STRENGTH, e.g. sae_ab12:3,7:ablate:1")
    try:
        return parts[0], [int(f) for f in parts[1].split(",")], parts[2], float(parts[3])
    except ValueError:
        raise Invalid(f"--patch-spec {spec!r}: features are comma-separated integers, strength a number") from None


def run(args: argparse.Namespace) -> int:
    state = make_state(args)
    lm = state.require_model()
    adhoc: list[str] = []
    try:
        for spec in args.patch_spec:
            sae_id, feats, mode, strength = parse_spec(spec)
            adhoc.append(state.patches.create(sae_id=sae_id, features=feats, mode=mode, strength=strength,
                                              name=f"cli {spec}", enabled=False).id)
        ids = None if args.patch is None and not adhoc else [*(args.patch or []), *adhoc]
        c = state.inference.compare(args.text, args.top_k, ids)
    finally:
        for pid in adhoc:
            state.patches.delete(pid)
    if args.json:
        print(json.dumps({"model": lm.model_id, "text": args.text, "patch_ids": c.patch_ids, "kl": c.kl,
                          "original": [t.to_dict() for t in c.original], "patched": [t.to_dict() for t in c.patched],
                          "moved": [m.to_dict() for m in c.moved]}, indent=2))
        return 0
    if not c.patch_ids:
        print(f"{'rank':>4}  {'prob':>8}  {'logit':>8}  token")
        for i, t in enumerate(c.original, 1):
            print(f"{i:>4}  {t.prob:8.4f}  {t.logit:8.3f}  {t.token!r}")
        return 0
    print(f"patches: {', '.join(c.patch_ids)}   KL(original||patched) = {c.kl:.5f} nats")
    print(f"{'rank':>4}  {'original':>8}  {'token':<18}  {'patched':>8}  token")
    for i, (o, p) in enumerate(zip(c.original, c.patched), 1):
        print(f"{i:>4}  {o.prob:8.4f}  {o.token!r:<18}  {p.prob:8.4f}  {p.token!r}")
    print("moved most: " + ", ".join(f"{m.token!r} {m.delta:+.4f}" for m in c.moved[:5]))
    return 0
