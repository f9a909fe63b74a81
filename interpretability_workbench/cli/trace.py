"""``microscope trace``: record activations at one hook into sharded Parquet with a manifest. The corpus is
streamed and packed like a training run's, and the held-out slice at its start is left out of the trace by
default, so runs (and sweeps) trained from the trace evaluate on contexts they never saw."""
from __future__ import annotations

import argparse
import math
import sys

from ..activations.packing import ContextPacker
from ..activations.source_types import SourceSpec
from ..activations.sources import open_source
from ..activations.store import write_trace
from ..errors import Invalid
from ..model.hook_names import hook_name
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="record activations at a hook to sharded Parquet with a manifest")
    add_model_args(p)
    p.add_argument("--layer", type=int, required=True, help="block index")
    p.add_argument("--hook", default="resid_post", help="resid_pre, resid_post, mlp_out or attn_out")
    p.add_argument("--tokens", type=int, default=100_000, help="how many tokens to record")
    p.add_argument("--corpus", default=None, help="a corpus id (microscope corpus list) or a corpus file/folder; "
                   "default: built-in")
    p.add_argument("--text-field", default="text", help="field/column with the text (for a file or folder)")
    p.add_argument("--held-out-tokens", type=int, default=16_384, help="tokens at the start of the corpus left out "
                   "of the trace (a run's eval_tokens must not exceed it); 0 records from the start")
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
    if args.corpus is None or state.corpora.repo.get(args.corpus) is not None or args.corpus == "default":
        spec = state.corpora.source(args.corpus)
    else:
        spec = SourceSpec(location=args.corpus, text_field=args.text_field)
    held = math.ceil(args.held_out_tokens / (ctx_size - 1)) if args.held_out_tokens > 0 else 0
    per_ctx = ctx_size - (0 if args.include_first else 1)
    source = open_source(spec)
    if next(iter(source.iter_documents()), None) is None:
        raise Invalid(f"corpus {spec.location} holds no text (every document is empty)")
    packer = ContextPacker(source, lm.tokenizer, ctx_size, held_out_contexts=held)
    contexts = packer.take(-(-args.tokens // per_ctx))

    def progress(n: int) -> None:
        print(f"\r{n}/{args.tokens} tokens", end="", file=sys.stderr, flush=True)

    man = write_trace(lm, contexts, name, args.out, n_tokens=args.tokens, batch_size=args.batch_size,
                      dtype=args.store_dtype, exclude_first=not args.include_first,
                      corpus=args.corpus or "default", held_out_contexts=held, progress=progress)
    print(file=sys.stderr)
    print(f"wrote {man.n_tokens} tokens of {name} ({lm.model_id}) in {len(man.shards)} shard(s) to {args.out} "
          f"(the first {held} contexts of the corpus left out as the held-out slice)")
    state.shutdown()
    return 0
