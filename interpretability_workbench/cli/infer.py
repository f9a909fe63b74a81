from __future__ import annotations

import argparse
import json

from ..inference.engine import next_token
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="print next-token probabilities for a prompt")
    p.add_argument("--text", required=True, help="the prompt")
    p.add_argument("--top-k", type=int, default=10, help="how many tokens to show (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = make_state(args)
    lm = state.require_model()
    toks = next_token(lm, args.text, args.top_k, state.settings.max_prompt_tokens)
    if args.json:
        print(json.dumps({"model": lm.model_id, "text": args.text, "top_k": [t.to_dict() for t in toks]}, indent=2))
    else:
        print(f"{'rank':>4}  {'prob':>8}  {'logit':>8}  token")
        for i, t in enumerate(toks, 1):
            print(f"{i:>4}  {t.prob:8.4f}  {t.logit:8.3f}  {t.token!r}")
    return 0
