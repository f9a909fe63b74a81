"""``microscope train``: train SAE(s) on the loaded model, printing progress lines and final metrics.

With ``--devices N --strategy ddp`` Lightning re-executes this command line once per extra process; those
children (``IWB_DDP_RUN_ID`` set, ``LOCAL_RANK`` > 0) follow rank 0's run and write nothing (training/ddp.py)."""
from __future__ import annotations

import argparse
import sys
import time

from ..events import TrainingProgress
from ..model.hook_names import expand
from ..settings import Settings
from ..training.config import TrainingConfig
from ..training.ddp import follower_run_id
from ..training.sweep import SweepSpec
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train sparse autoencoder(s) on a model's activations")
    add_model_args(p)
    p.add_argument("--layer", type=int, default=None, help="block index (or --layers)")
    p.add_argument("--layers", default=None, help="comma-separated block indices: one SAE each, one forward per batch")
    p.add_argument("--hook", default="resid_post", help="resid_pre, resid_post, mlp_out or attn_out")
    p.add_argument("--tokens", type=int, default=200_000, help="training tokens (default 200000)")
    p.add_argument("--architecture", default="topk", choices=["topk", "standard", "batchtopk"])
    p.add_argument("--d-sae", type=int, default=4608, help="latents per SAE")
    p.add_argument("--k", type=int, default=32, help="active latents per token (topk/batchtopk)")
    p.add_argument("--l1-coefficient", type=float, default=5.0, help="L1 weight (standard)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-4/sqrt(d_sae/2^14))")
    p.add_argument("--batch-size", type=int, default=4096, help="activations per optimiser step, all processes together: with --devices N each process takes "
                   "batch-size/N per step (must divide evenly)")
    p.add_argument("--context-size", type=int, default=128, help="tokens per context")
    p.add_argument("--corpus", default="default", help="corpus id (default: built-in)")
    p.add_argument("--trace", default=None, help="train from a recorded trace folder (microscope trace); sweeps too")
    p.add_argument("--epochs", type=int, default=None, help="passes over a corpus shorter than the budget: 1 never "
                   "repeats data (refused up front when it is counted too short); default: repeat as needed, reported")
    p.add_argument("--sweep-d-sae", default=None, help="comma-separated widths: train one SAE per width (x k x architecture) "
                   "at each hook from one forward per batch")
    p.add_argument("--sweep-k", default=None, help="comma-separated k values for the sweep (topk, batchtopk)")
    p.add_argument("--sweep-architectures", default=None, help="comma-separated architectures for the sweep")
    p.add_argument("--sweep-l1", default=None, help="comma-separated L1 coefficients for the sweep (standard)")
    p.add_argument("--buffer-tokens", type=int, default=65_536, help="activations per shuffle block")
    p.add_argument("--model-batch-size", type=int, default=32, help="contexts per model forward")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--no-normalize", action="store_true", help="do not scale inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-tokens", type=int, default=16_384, help="held-out tokens for final metrics")
    p.add_argument("--ce-contexts", type=int, default=8, help="held-out contexts for CE-loss recovered (0 skips)")
    p.add_argument("--devices", default="1", help="Lightning devices; N > 1 with --strategy ddp trains in N processes "
                   "(gloo on CPU); only rank 0 writes the run, checkpoints and SAE")
    p.add_argument("--strategy", default="auto", help="Lightning strategy (auto, ddp, ...)")
    p.add_argument("--num-nodes", type=int, default=1, help="Lightning num_nodes")
    p.add_argument("--precision", default="32-true", help="Lightning precision")
    p.add_argument("--lr-finder", action="store_true", help="run Lightning's LR finder first")
    p.add_argument("--grad-clip-norm", type=float, default=1.0, help="clip each SAE's global grad norm at this value, "
                   "in SAELens's loss units (default 1.0, as SAELens); 0 disables clipping")
    p.add_argument("--aux-k-on", default="raw", choices=["raw", "post_relu"], help="AuxK on the dead latents' raw "
                   "pre-activations (default, as SAELens) or on their ReLU (as sparsify)")
    p.add_argument("--resume", default=None, metavar="RUN_ID", help="resume an interrupted/cancelled run instead")
    p.set_defaults(func=run)


def _print_progress(ev: TrainingProgress) -> None:
    fmt = lambda v, f: format(v, f) if isinstance(v, (int, float)) else "-"  # noqa: E731
    print(f"[{ev.phase} {ev.phase_done}/{ev.phase_total} {ev.phase_unit}] read {ev.tokens_read} step {ev.step} "
          f"tokens {ev.tokens}/{ev.total_tokens} pass {ev.passes} {fmt(ev.tokens_per_s, '.0f')} tok/s "
          f"eta {fmt(ev.eta_s, '.0f')}s", file=sys.stderr, flush=True)
    for m in ev.members:
        print(f"    [{m.index}] {m.hook_name} {m.architecture} d_sae={m.d_sae} k={m.k}: fvu {fmt(m.fvu, '.4f')} "
              f"l0 {fmt(m.l0, '.1f')} dead {fmt(m.dead_fraction, '.3f')}", file=sys.stderr, flush=True)


def _sweep(args: argparse.Namespace) -> SweepSpec | None:
    def values(text: str | None, kind: type) -> list | None:
        return None if not text else [kind(x) for x in text.split(",") if x.strip()]
    axes = {"d_sae": values(args.sweep_d_sae, int), "k": values(args.sweep_k, int),
            "architectures": values(args.sweep_architectures, str), "l1_coefficient": values(args.sweep_l1, float)}
    return SweepSpec(**axes) if any(v is not None for v in axes.values()) else None


def _wait(state, run_id: str):  # noqa: ANN001, ANN202 - -> store.runs.RunRecord
    """Poll the run's status instead of blocking in Thread.join: on Python 3.11 a Ctrl-C inside join() makes
    the thread look finished, so shutdown would not wait for the run to stop (and record 'interrupted')."""
    while state.training.get(run_id).status in ("queued", "running") and state.training.active_run() == run_id:
        time.sleep(0.25)
    return state.training.wait(run_id)


def follow(args: argparse.Namespace, run_id: str) -> int:
    """A rank > 0 DDP child: train alongside rank 0's run ``run_id``; write and print nothing."""
    from ..training.runner import follow_run

    overrides = {k: v for k in ("model", "device", "dtype") if (v := getattr(args, k, None)) is not None}
    follow_run(Settings(**overrides), run_id)
    return 0


def run(args: argparse.Namespace) -> int:
    if (leader := follower_run_id()) is not None:
        return follow(args, leader)
    state = make_state(args)
    try:
        if args.resume:
            run_id = state.training.resume(args.resume, multiprocess=True)
        else:
            if args.layers:
                hooks = expand([int(x) for x in args.layers.split(",") if x.strip()], args.hook)
            elif args.layer is not None:
                hooks = expand([args.layer], args.hook)
            else:
                print("error: give --layer or --layers", file=sys.stderr)
                return 2
            devices = int(args.devices) if args.devices.isdigit() else args.devices
            cfg = TrainingConfig(
                hook_names=hooks, architecture=args.architecture, d_sae=args.d_sae, k=args.k,
                l1_coefficient=args.l1_coefficient, lr=args.lr, total_tokens=args.tokens, batch_size=args.batch_size,
                context_size=args.context_size, corpus=args.corpus, trace_dir=args.trace,
                checkpoint_every=args.checkpoint_every, normalize=not args.no_normalize, seed=args.seed,
                eval_tokens=args.eval_tokens, ce_eval_contexts=args.ce_contexts, devices=devices,
                strategy=args.strategy, num_nodes=args.num_nodes, precision=args.precision,
                lr_finder=args.lr_finder, grad_clip_norm=args.grad_clip_norm or None, aux_k_on=args.aux_k_on,
                analyze=False, epochs=args.epochs, sweep=_sweep(args),
                buffer_tokens=args.buffer_tokens, model_batch_size=args.model_batch_size)
            run_id = state.training.start(cfg, multiprocess=True)
        print(f"run {run_id}", flush=True)
        for note in state.training.notes(run_id):
            print(f"note: {note}", file=sys.stderr, flush=True)
        last = [0.0]

        def throttled(ev: TrainingProgress) -> None:
            if time.time() - last[0] >= 2.0:
                last[0] = time.time()
                _print_progress(ev)
        state.bus.on(TrainingProgress, throttled)
        rec = _wait(state, run_id)
        if rec.status != "done":
            print(f"run {run_id} {rec.status}: {rec.error or ''}", file=sys.stderr)
            return 1
        m = rec.metrics
        print(f"trained {m['train_tokens']} tokens ({m['requested_tokens']} asked; {m['passes']} pass(es) over the "
              f"data), held out {m['held_out_tokens']}, {m['steps']} steps on {m['world_size']} process(es), "
              f"peak memory {m['peak_memory_bytes'] / 2**20:.0f} MiB")
        for note in m.get("notes", []):
            print(f"note: {note}")
        for p in m["members"]:
            print(f"[{p['index']}] {p['label']}: sae {p['sae_id']}  held-out FVU {p['held_out_fvu']:.4f}  "
                  f"explained variance {p['explained_variance']:.4f}  L0 {p['l0']:.1f}  "
                  f"dead fraction {p['dead_fraction']:.4f}  CE-loss recovered {p.get('ce_loss_recovered') or float('nan'):.4f}  "
                  f"KL {p.get('kl_with_sae') or float('nan'):.4f}")
        return 0
    finally:
        state.shutdown()
        state.close()
