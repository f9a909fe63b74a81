"""``microscope analyze --sae ID``: the feature analysis the server runs after training, from a shell."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..events import AnalysisProgress
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyse every feature of an SAE (contexts, histograms, logits, labels)")
    p.add_argument("--sae", required=True, help="SAE id (see the workbench's SAE list)")
    p.add_argument("--corpus", default=None,
                   help="corpus id, or a .txt/.jsonl/.parquet file; default: the built-in corpus")
    p.add_argument("--tokens", type=int, default=None,
                   help="analyse at most this many tokens (default IWB_ANALYSIS_TOKENS; 0 there: the whole corpus)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = make_state(args, need_model=False)
    try:
        state.saes.row(args.sae)  # unknown ids fail before the model loads
        state.load_model(state.settings.model)  # --model / IWB_MODEL; must be the SAE's base model

        def show(ev: AnalysisProgress) -> None:
            print(f"\r{ev.phase}: {ev.done}/{ev.total}", end="", file=sys.stderr, flush=True)

        state.bus.on(AnalysisProgress, show)
        corpus_file = args.corpus if args.corpus and Path(args.corpus).is_file() else None
        summary = state.features.analyze(args.sae, None if corpus_file else args.corpus, args.tokens,
                                         corpus_file=corpus_file)
        print(file=sys.stderr)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            t = summary["timings"]
            print(f"analysed {summary['d_sae']} features of {args.sae} on {summary['n_tokens']} tokens "
                  f"({summary.get('excluded_tokens', 0)} special tokens left out; {summary['corpus']}): "
                  f"{summary['dead']} dead, mean L0 {summary['mean_l0']:.1f}, "
                  f"{summary['seconds']:.1f}s (forward {t['forward_s']:.1f}s, analysis {t['encode_stats_s']:.1f}s)")
        return 0
    finally:
        state.shutdown()
        state.close()
