from __future__ import annotations

import argparse
import sys

from ..activations.corpus import load_texts, make_contexts
from ..activations.store import write_trace
from ..model.hook_names import hook_name
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="record activations at a hook to sharded Parquet with a manifest")
    add_model_args(p)
    p.add_argument("--layer", type=int, required=True, help="block index")
    p.add_argument("--hook", default="resid_post", help="resid_pre, resid_post, mlp_out or attn_out")
    p.add_argument("--tokens", type=int, default=100_000, help="how many tokens to record")
    p.add_argument("--corpus", default=None, help="corpus file (.txt/.jsonl/.parquet); default: built-in")
    p.add_argument("--context-size", type=int, default=None, help="tokens per context (env IWB_CONTEXT_SIZE)")
    p.add_argument("--batch-size", type=int, default=16, help="contexts per forward")
    p.add_argument("--store-dtype", dest="store_dtype", default="float32", choices=["float32", "float16"], help="stored dtype")
    p.add_argument("--include-first", action="store_true", help="keep position 0 (attention-sink outliers)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = make_state(args)
    lm = state.require_model()
    name = hook_name(args.layer, args.hook)
    from ..model.hook_map import resolve

    resolve(lm.model, name)  # layer range check with a clear message
    ctx_size = args.context_size or state.settings.context_size
    texts = load_texts(args.corpus)
    per_ctx = ctx_size - (0 if args.include_first else 1)
    contexts = make_contexts(lm.tokenizer, texts, ctx_size, max_contexts=-(-args.tokens // per_ctx))

    def progress(n: int) -> None:
        print(f"\r{n}/{args.tokens} tokens", end="", file=sys.stderr, flush=True)

    man = write_trace(lm, contexts, name, args.out, n_tokens=args.tokens, batch_size=args.batch_size,
                      dtype=args.store_dtype, exclude_first=not args.include_first,
                      corpus=args.corpus or "default", progress=progress)
    print(file=sys.stderr)
    print(f"wrote {man.n_tokens} tokens of {name} ({lm.model_id}) in {len(man.shards)} shard(s) to {args.out}")
    return 0
