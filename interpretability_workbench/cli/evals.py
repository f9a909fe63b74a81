"""``microscope map`` and ``microscope evals``: compute an SAE's feature map or evaluations with the same services
as the server (results cached in the SAE's folder), printing progress and a summary."""
from __future__ import annotations

import argparse
import sys

from ..evals.service import EvalRequest
from ..evals.suite import EVALS
from ..events import JobProgress
from ..features.map_service import MapRequest
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="lay out an SAE's decoder directions in 2-D (UMAP) and cluster them; the map is "
                                   "cached in the SAE folder and shown on the Map page")
    p.add_argument("sae", metavar="SAE_ID")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-neighbors", type=int, default=15, help="UMAP neighbourhood size (default 15)")
    p.add_argument("--min-dist", type=float, default=0.1, help="UMAP minimum distance (default 0.1)")
    p.add_argument("--clusters", type=int, default=None, help="k-means clusters (default sqrt(d_sae/2), 2..256)")
    p.add_argument("--epochs", type=int, default=None, help="UMAP epochs (default by size)")
    p.add_argument("--init", choices=["spectral", "pca", "random"], default=None)
    p.add_argument("--pca-dims", type=int, default=None, help="pre-reduce decoder rows to this many dimensions")
    p.set_defaults(func=run_map)

    e = sub.add_parser("evals", help="evaluate an SAE on the loaded model: feature absorption, k-sparse probing, "
                                     "activation density")
    e.add_argument("sae", metavar="SAE_ID")
    e.add_argument("--which", default=",".join(EVALS), help=f"comma-separated subset of {','.join(EVALS)}")
    e.add_argument("--corpus", default=None, help="corpus id for probing tasks and density (default: built-in)")
    e.add_argument("--density-tokens", type=int, default=65_536)
    e.add_argument("--probe-docs", type=int, default=400)
    e.add_argument("--probe-per-class", type=int, default=500)
    e.add_argument("--ks", default="1,2,5,10", help="k-sparse probe sizes")
    e.add_argument("--per-letter", type=int, default=64, help="absorption words per first letter")
    e.add_argument("--min-probe-f1", type=float, default=0.6, help="absorption: skip letters whose probe is worse")
    e.add_argument("--seed", type=int, default=0)
    add_model_args(e)
    e.set_defaults(func=run_evals)


def _progress(ev: JobProgress) -> None:
    print(f"[{ev.status}] {ev.done}/{ev.total} {ev.detail or ''}", file=sys.stderr, flush=True)


def run_map(args: argparse.Namespace) -> int:
    state = make_state(args, need_model=False)
    try:
        req = MapRequest(seed=args.seed, n_neighbors=args.n_neighbors, min_dist=args.min_dist,
                         n_clusters=args.clusters, n_epochs=args.epochs, init=args.init, pca_dims=args.pca_dims)
        state.bus.on(JobProgress, _progress)
        job = state.feature_maps.start(args.sae, req)
        state.feature_maps.wait(args.sae)
        job = state.feature_maps.jobs.get(job.id)
        if job.status != "done":
            print(f"error: map job {job.id} {job.status}: {job.error}", file=sys.stderr)
            return 1
        v = state.feature_maps.view(args.sae)
        print(f"mapped {len(v.points.index)} features of {args.sae} into {len(v.clusters)} clusters "
              f"in {v.params.seconds:.1f}s")
        for c in v.clusters[:20]:
            print(f"  cluster {c.id:>3}  {c.size:>6} features  {', '.join(c.top_labels[:3]) or '-'}")
        return 0
    finally:
        state.shutdown()
        state.close()


def run_evals(args: argparse.Namespace) -> int:
    state = make_state(args)
    try:
        req = EvalRequest(which=[w.strip() for w in args.which.split(",") if w.strip()], corpus=args.corpus,
                          density_tokens=args.density_tokens, probe_docs=args.probe_docs,
                          probe_per_class=args.probe_per_class, ks=[int(k) for k in args.ks.split(",") if k.strip()],
                          absorption_per_letter=args.per_letter, absorption_min_probe_f1=args.min_probe_f1,
                          seed=args.seed)
        state.bus.on(JobProgress, _progress)
        job = state.evals.start(args.sae, req)
        state.evals.wait(args.sae)
        job = state.evals.jobs.get(job.id)
        if job.status != "done":
            print(f"error: evaluation job {job.id} {job.status}: {job.error}", file=sys.stderr)
            return 1
        r = state.evals.result(args.sae)
        print(f"evaluated {args.sae} ({', '.join(req.which)})")
        for k, v in r.result["summary"].items():
            print(f"  {k:<26} {'-' if v is None else f'{v:.4f}'}")
        return 0
    finally:
        state.shutdown()
        state.close()
