"""``microscope corpus``: add a corpus (a file copied into the workspace in chunks, a path registered in
place under IWB_DATA_DIRS, or a hub dataset from the local Hugging Face cache) and count its tokens;
list the corpora."""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from ..events import JobProgress
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="add or list training corpora")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    add = csub.add_parser("add", help="add a corpus file, register a path, or a cached hub dataset; count its tokens")
    add_model_args(add)
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("file", nargs="?", default=None,
                       help="a .txt, .jsonl, .jsonl.gz, .jsonl.zst or .parquet file, copied into the workspace")
    where.add_argument("--register", metavar="PATH", default=None,
                       help="a file or folder (Parquet/JSONL shards, datasets save_to_disk) under IWB_DATA_DIRS, read in place")
    where.add_argument("--hub", metavar="ID", default=None, help="a dataset id 'owner/name' in the local Hugging Face cache")
    add.add_argument("--text-field", default="text", help="the JSON field / column with the text (default: text)")
    add.add_argument("--split", default="train", help="split of a datasets folder or hub dataset (default: train)")
    add.add_argument("--config", default=None, help="hub dataset configuration (subset)")
    add.add_argument("--revision", default=None, help="hub dataset revision in the cache")
    add.add_argument("--no-count", action="store_true", help="do not load the model to count tokens now "
                     "(the server counts them at its next start)")
    add.set_defaults(func=run_add)
    ls = csub.add_parser("list", help="list corpora")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    ls.set_defaults(func=run_list)


def _line(rec) -> str:  # noqa: ANN001 - a store.corpora.CorpusRecord
    tokens = f"{rec.n_tokens} tokens" if rec.n_tokens is not None else (
        "counting…" if rec.status == "counting" else "tokens not counted")
    extra = f" ({rec.error})" if rec.error else ""
    return f"{rec.id}\t{rec.kind}\t{rec.format or '-'}\t{rec.status}\t{tokens}\t{rec.name}{extra}"


def run_add(args: argparse.Namespace) -> int:
    state = make_state(args, need_model=not args.no_count)
    try:
        last = [0.0]

        def show(ev: JobProgress) -> None:
            if ev.status == "running" and time.time() - last[0] >= 2.0:
                last[0] = time.time()
                pct = f"{100 * ev.done / ev.total:.0f}%" if ev.total else "-"
                print(f"[count] {pct} {ev.detail or ''}", file=sys.stderr, flush=True)
        state.bus.on(JobProgress, show)
        if args.file is not None:
            rec = state.corpora.add_file(args.file, text_field=args.text_field)
        elif args.register is not None:
            rec = state.corpora.register_path(args.register, text_field=args.text_field)
        else:
            rec = state.corpora.register_hub(args.hub, text_field=args.text_field, split=args.split,
                                             config=args.config, revision=args.revision)
        state.corpora.wait_counts()
        print(_line(state.corpora.get(rec.id).record))
        return 0 if state.corpora.get(rec.id).record.status != "failed" else 1
    finally:
        state.shutdown()
        state.close()


def run_list(args: argparse.Namespace) -> int:
    state = make_state(args, need_model=False)
    try:
        views = state.corpora.list()
        if args.json:
            rows = [{**{k: v for k, v in asdict(v.record).items() if k != "spec"},
                     "progress": v.progress._asdict() if v.progress else None} for v in views]
            print(json.dumps(rows, indent=1))
        else:
            for v in views:
                print(_line(v.record))
        return 0
    finally:
        state.close()
