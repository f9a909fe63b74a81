"""``microscope explain``: explain (and score) an SAE's analysed features with an LLM, printing progress."""
from __future__ import annotations

import argparse
import sys

from ..events import JobProgress
from ..features.explanations import ExplainRequest
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="explain and score SAE features with an LLM (the loaded model, another local "
                                       "model, or an OpenAI-compatible endpoint)")
    p.add_argument("--sae", required=True, help="SAE id (analysed first: microscope analyze)")
    p.add_argument("--features", default=None, help="comma-separated feature indices (default: every analysed one)")
    p.add_argument("--explainer", choices=["loaded", "local", "endpoint"], default="loaded",
                   help="loaded (default), local (--explainer-model beside it) or endpoint (IWB_EXPLAINER_URL)")
    p.add_argument("--explainer-model", default=None, help="local: model name/folder; endpoint: model name")
    p.add_argument("--no-score", action="store_true", help="skip detection and fuzzing scores")
    p.add_argument("--contexts", type=int, default=256, help="analysis contexts sampled for negatives")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true",
                   help="explain and score again features this explainer already explained (replaces the stored "
                        "explanation; user labels are kept)")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = make_state(args)
    try:
        feats = [int(f) for f in args.features.split(",")] if args.features else None
        req = ExplainRequest(features=feats, explainer=args.explainer, explainer_model=args.explainer_model,
                             score=not args.no_score, n_contexts=args.contexts, seed=args.seed,
                             force=args.force)
        state.bus.on(JobProgress, lambda ev: print(f"[{ev.status}] {ev.done}/{ev.total} {ev.detail or ''}",
                                                   file=sys.stderr, flush=True))
        job = state.explanations.start(args.sae, req)
        state.explanations.wait(args.sae)
        job = state.explanations.get_job(job.id)
        print(f"job {job.id}: {job.status}, {job.done}/{job.total} features, {job.errors} with an error"
              + (f" ({job.error})" if job.error else ""))
        for idx in (feats or state.features.repo.indices(args.sae))[:50]:
            row = state.features.repo.get(args.sae, idx)
            e = row.explanation if row else None
            if e is not None:
                score = (f" detection {e.detection:.2f} fuzzing {e.fuzzing:.2f}"
                         if e.detection is not None and e.fuzzing is not None else "")
                print(f"{idx:>6}  {e.text or '-'}{score}{'  error: ' + e.error if e.error else ''}")
        return 0 if job.status == "done" else 1
    finally:
        state.shutdown()
        state.close()
