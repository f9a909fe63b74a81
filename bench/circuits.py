"""Benchmark: circuit tracing end to end — transcoders trained in the bench, then attribution graphs of five
stated prompts — and the batched attribution against the dense one-backward-per-row computation.

What runs (the product's own path, through a ``WorkbenchState`` over a temporary workspace):

1. **Transcoders**: ``transcoder_training.start`` trains one skip transcoder per layer (TopK) from one forward
   per batch, with the token budget of ``--tokens`` (the built-in corpus, position 0 of each context dropped);
   prints training time, held-out FVU of the MLP outputs, L0, dead fraction and CE loss recovered with every
   trained MLP replaced at once.
2. **Graphs**: ``circuits.trace`` on each of the ``PROMPTS`` (about 32 tokens each with the default model's
   tokenizer, BOS included): attribution with at most ``--max-feature-nodes`` feature rows (most influential
   first, as circuit-tracer's ``max_feature_nodes``), pruning at node 0.8 / edge 0.98, replacement and
   completeness scores, and the intervention check (the ``--validate-edges`` strongest feature edges: their
   source ablated in the real model with attention patterns frozen — circuit-tracer's default — and the
   measured change correlated with the edge weight). Prints per prompt: graph time, scores, correlation.
3. **Baseline** (on the first prompt): the same rows of the same graph computed as a user of plain PyTorch
   would write circuit-tracer's method without its batching: the same linearised forward (patterns and
   norm scales detached, transcoders spliced in with their errors: ``replacement.record_prompt``) and the
   same node set, then **one ``torch.autograd.grad`` per target row** (each logit row, each selected
   feature row), contracted with every source's vector (``a_s W_dec[s]``, the error vector, the embedding).
   circuit-tracer itself cannot be imported here (it pins transformers<=4.57), so the baseline is its
   method written out, not its code. The bench checks the two give the same rows (max |difference| relative
   to the largest weight) and prints both times; ``--baseline-rows`` caps the rows the baseline computes (then
   its time is extrapolated per row from evenly spaced rows and the line says so).

The last line: the median completeness (the issue's headline figure, with the median replacement score and
intervention correlation) and, last, baseline time / ours for the first prompt's graph.

Defaults are sized for a shared 2-core CPU (a few minutes idle): all 30 layers of the default model, 1024
latents, k 16, 8192 training tokens. The issue's targets (graph <= 60 s per 32-token prompt on the 2-core
CPU, completeness >= 0.8, replacement >= 0.5, correlation >= 0.8) need far more training than that:
``--preset issue`` (8192 latents, k 32, 20M tokens, 4096 feature rows) is for a GPU box.

    IWB_HOME=workspace nice -n 10 .venv/bin/python bench/circuits.py [--layers 30] [--tokens 8192]
        [--d-tc 1024] [--k 16] [--max-feature-nodes 128] [--prompts 5] [--baseline-rows N] [--preset issue]

Measured 2026-11-28 on the idle 2-core CPU (defaults, one torch thread): training 108.3 s (16 steps; held-out
FVU 0.912, CE loss recovered -0.161); graphs 5.3 / 4.7 / 4.2 / 4.0 / 4.0 s; completeness 0.606 / 0.615 / 0.596
/ 0.627 / 0.606, replacement 0.074 / 0.106 / 0.073 / 0.147 / 0.108, intervention correlation 0.931 / 0.962 /
1.000 / 0.982 / 0.963; prompt 0 rows: ours 4.9 s vs one backward per row 5.7 s (1.18), max |difference| /
max |weight| 5.4e-07. At 16 optimiser steps the SAELens loss units of 2026-11-27 change nothing (FVU 0.913
before): the transcoders are untrained either way, and the scores wait for ``--preset issue`` on a GPU.

Measured 2026-11-27 on the shared 2-core CPU (no GPU), loaded by other engineers' jobs (load average 12-17
during the first run, 7-10 during the second), one torch thread, ``nice -n 10``:

Defaults (30 layers, d_tc 1024, k 16, 8192 training tokens, 128 feature rows)::

    training: 545.7s; held-out FVU 0.913 (mean of layers), L0 15.9, dead 0.04, CE loss recovered -0.100
      (3.339 clean, 26.111 replaced)
    prompt 0 (32 tokens, top ' the' p=0.52): graph 24.3s, 14817 active features, 128 rows, 391 nodes after
      pruning; replacement 0.069, completeness 0.603, intervention correlation 0.929
    prompt 1 (30 tokens, top ' mul'  p=0.21): graph 19.4s; replacement 0.105, completeness 0.616, corr 0.961
    prompt 2 (32 tokens, top ' Mary' p=0.88): graph 23.7s; replacement 0.070, completeness 0.594, corr 1.000
    prompt 3 (32 tokens, top ','     p=0.95): graph 13.8s; replacement 0.129, completeness 0.620, corr 0.979
    prompt 4 (34 tokens, top ' new'  p=0.79): graph 15.3s; replacement 0.104, completeness 0.604, corr 0.958
    prompt 0 rows (131): ours 24.2s vs one backward per row 32.0s (measured, every row); max |difference| /
      max |weight| 5.7e-07
    median completeness 0.604 (target 0.8), replacement 0.104 (0.5), intervention correlation 0.961 (0.8),
      graph time 19.4s (60 s); one-backward-per-row time / ours = 1.32

(that run timed ours on the first, cold graph; the bench now re-times it warm after the baseline.)

``--max-feature-nodes 512`` (the product's default rows; same training)::

    graphs 35.0 / 27.7 / 30.0 / 20.8 / 29.8 s; replacement 0.137 / 0.184 / 0.158 / 0.222 / 0.182; completeness
      0.666 / 0.687 / 0.667 / 0.696 / 0.672; intervention correlation 0.929 / 0.968 / 0.999 / 0.875 / 0.952
    median completeness 0.672 (target 0.8), replacement 0.182 (0.5), intervention correlation 0.952 (0.8),
      graph time 29.8s (60 s)

Reading: the graph-time target holds on the loaded 2-core CPU (30 s at 512 rows, 19 s at 128); the intervention
correlation target holds; completeness and replacement miss their targets because 8192 tokens (16 steps) leave
the transcoders nearly untrained (FVU 0.91) — the score targets need the ``issue`` preset's budget, not run
here. On one CPU thread the batched backward gains little over one backward per row (1.3x at 128 rows; the
same FLOPs, only per-op overhead saved); at 512 rows the per-row time was extrapolated from the first 128 rows
(the lowest layers, the cheapest: biased; the bench now samples evenly spaced rows), so no ratio is given.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interpretability_workbench.circuits.attribution import attribute  # noqa: E402
from interpretability_workbench.circuits.graph import AttributionGraph  # noqa: E402
from interpretability_workbench.circuits.replacement import (  # noqa: E402
    active_features,
    layer_transcoders,
    record_prompt,
)
from interpretability_workbench.circuits.service import CircuitSettings  # noqa: E402
from interpretability_workbench.model.hook_map import arch_for, get_module  # noqa: E402
from interpretability_workbench.model.loader import load_model  # noqa: E402
from interpretability_workbench.settings import Settings  # noqa: E402
from interpretability_workbench.state import WorkbenchState  # noqa: E402
from interpretability_workbench.training.transcoder_config import (
    TranscoderTrainingConfig,  # noqa: E402
)

PROMPTS = (
    ("The Eiffel Tower is in Paris, France. The Colosseum is in Rome, Italy. The Big Ben tower is in London, "
     "the capital of"),
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef",
    ("When Mary and John went to the store, John bought a bottle of cold milk and a big loaf of warm bread, and "
     "then he gave the bread to"),
    ("One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, fourteen, fifteen, "
     "sixteen"),
    ("The opposite of hot is cold. The opposite of big is small. The opposite of fast is slow. The opposite of up "
     "is down. The opposite of old is"),
)
"""Five stated prompts (factual recall, code, indirect object, counting, antonyms): 30-34 tokens each with the
default model's tokenizer (BOS included)."""

PRESETS: dict[str, dict[str, Any]] = {
    "small": {"d_tc": 1024, "k": 16, "tokens": 8192, "batch_size": 512, "context_size": 64, "model_batch_size": 8,
              "max_feature_nodes": 128, "batch_rows": 64},
    "issue": {"d_tc": 8192, "k": 32, "tokens": 20_000_000, "batch_size": 4096, "context_size": 128,
              "model_batch_size": 32, "max_feature_nodes": 4096, "batch_rows": 256},
}


def load_line() -> str:
    try:
        return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:  # pragma: no cover
        return ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="model to load ('default': SmolLM2-135M from IWB_HOME/models)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small",
                    help="small: a few minutes on a 2-core CPU; issue: the issue's setting, for a GPU box")
    ap.add_argument("--layers", type=int, default=None, help="transcoders on the first N layers (default: all)")
    ap.add_argument("--tokens", type=int, default=None, help="training token budget")
    ap.add_argument("--d-tc", type=int, default=None, help="latents per transcoder")
    ap.add_argument("--k", type=int, default=None, help="active latents per token (TopK)")
    ap.add_argument("--batch-size", type=int, default=None, help="training tokens per optimiser step")
    ap.add_argument("--context-size", type=int, default=None, help="training context length")
    ap.add_argument("--model-batch-size", type=int, default=None, help="contexts per training forward")
    ap.add_argument("--max-feature-nodes", type=int, default=None, help="feature rows per graph")
    ap.add_argument("--batch-rows", type=int, default=None, help="target rows per backward pass (ours)")
    ap.add_argument("--prompts", type=int, default=len(PROMPTS), help=f"how many of the {len(PROMPTS)} prompts")
    ap.add_argument("--validate-edges", type=int, default=20, help="strongest edges checked by intervention")
    ap.add_argument("--validate-freeze", choices=("none", "attention", "direct"), default="attention")
    ap.add_argument("--baseline-rows", type=int, default=None,
                    help="rows the one-backward-per-row baseline computes (default: all; fewer: extrapolated)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine two threads oversubscribe the CPU "
                         "and every op waits for both; 0: torch's default)")
    ap.add_argument("--home", type=Path, default=None, help="workspace for the run (default: a temporary folder)")
    args = ap.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not 1 <= args.prompts <= len(PROMPTS):
        ap.error(f"--prompts must be in 1..{len(PROMPTS)}")
    return args


class Baseline(NamedTuple):
    seconds: float
    """Wall time for every row (extrapolated per row when ``rows_done < rows_total``)."""
    rows_done: int
    rows_total: int
    max_rel_diff: float
    """Largest |baseline - ours| over the rows computed, relative to the largest |weight| among them."""


def dense_rows(model: torch.nn.Module, transcoders: Any, graph: AttributionGraph, max_rows: int | None) -> Baseline:
    """circuit-tracer's direct effects for ``graph``'s rows, one backward per target row (see module doc)."""
    t0 = time.perf_counter()
    tcs = layer_transcoders(model, transcoders)
    ids = torch.tensor(graph.input_ids, device=next(model.parameters()).device)
    rec = record_prompt(model, tcs, ids)
    feats = active_features(rec, tcs, zero_first_position=graph.zero_first_position)
    n_layers, n_pos = len(tcs), ids.shape[0]
    sel = graph.selected_features.to(feats.layer.device)
    dev = feats.layer.device
    # source columns in the graph's order: selected features, errors (layer-major), tokens (layer n_layers)
    src_layer = torch.cat([feats.layer[sel], torch.arange(n_layers, device=dev).repeat_interleave(n_pos),
                           torch.full((n_pos,), n_layers, device=dev)])
    src_pos = torch.cat([feats.pos[sel], torch.arange(n_pos, device=dev).repeat(n_layers),
                         torch.arange(n_pos, device=dev)])
    src_vec = torch.cat([feats.decoder[sel], feats.errors.reshape(-1, feats.errors.shape[-1]),
                         rec.embeds[0].detach()])  # [n_sources d_model]
    unembed = get_module(model, arch_for(model).unembed).weight.detach().float()  # [d_vocab d_model]
    targets: list[tuple[int, Any]] = []  # (graph row, value to differentiate)
    for i, tok in enumerate(graph.logit_tokens):
        v = unembed[tok] - unembed.mean(0)
        targets.append((graph.logit_start + i, lambda v=v: (rec.final_hidden[0, -1].float() * v).sum()))
    for j, (layer, pos, f) in enumerate(graph.active_features[graph.selected_features].tolist()):
        w = tcs[layer].W_enc[:, f]  # type: ignore[union-attr]
        targets.append((j, lambda layer=layer, pos=pos, w=w: (rec.mlp_in[layer][0, pos].float() * w).sum()))
    t_setup = time.perf_counter() - t0
    n_do = len(targets) if max_rows is None else max(1, min(max_rows, len(targets)))
    # a capped run takes evenly spaced rows: rows are sorted by layer and deeper rows backpropagate further
    picked = torch.linspace(0, len(targets) - 1, n_do).round().long().unique().tolist()
    n_do = len(picked)
    worst, scale = 0.0, 0.0
    t1 = time.perf_counter()
    for row, value in (targets[i] for i in picked):
        grads = torch.autograd.grad(value(), [*rec.mlp_nodes, rec.embeds], retain_graph=True, allow_unused=True)
        g = torch.stack([torch.zeros_like(rec.embeds[0]) if x is None else x[0] for x in grads])  # [n_layers+1 pos d]
        ours = graph.adjacency[row, :graph.logit_start]
        dense = (g[src_layer, src_pos].float() * src_vec.float()).sum(-1).cpu()  # [n_sources]
        worst = max(worst, float((dense - ours).abs().max()))
        scale = max(scale, float(ours.abs().max()))
    t_rows = time.perf_counter() - t1
    seconds = t_setup + t_rows * len(targets) / max(n_do, 1)
    return Baseline(seconds, n_do, len(targets), worst / scale if scale > 0 else worst)


def open_state(args: argparse.Namespace, home: Path) -> WorkbenchState:
    """A workbench over ``home`` with ``args.model`` adopted (the default model read from IWB_HOME's cache)."""
    state = WorkbenchState(Settings(home=home, model="none", device=args.device, dtype="float32"))
    cache = Path(os.environ.get("IWB_HOME", ROOT / "workspace")) / "models"
    state.model.adopt(load_model(args.model, device=args.device, dtype="float32", cache_dir=cache))
    return state


def train(state: WorkbenchState, args: argparse.Namespace) -> dict[str, Any]:
    lm = state.require_model()
    n_layers = lm.n_layers if args.layers is None else min(args.layers, lm.n_layers)
    cfg = TranscoderTrainingConfig(
        layers=list(range(n_layers)), d_tc=args.d_tc, architecture="topk", k=args.k, skip=True,
        total_tokens=args.tokens, batch_size=args.batch_size, context_size=args.context_size,
        model_batch_size=args.model_batch_size, buffer_tokens=max(4096, args.batch_size), eval_contexts=8,
        dead_after_tokens=min(50_000, max(args.tokens // 4, args.batch_size)), name="bench")
    print(f"training: {n_layers} of {lm.n_layers} layers, TopK skip transcoders d_tc {cfg.d_tc} k {cfg.k}, "
          f"{cfg.total_tokens} tokens (batch {cfg.batch_size}, context {cfg.context_size}, lr {cfg.learning_rate:.2g})"
          f"   [{load_line()}]", flush=True)
    t0 = time.perf_counter()
    rec = state.transcoder_training.wait(state.transcoder_training.start(cfg))
    dt = time.perf_counter() - t0
    if rec.status != "done" or not rec.metrics:
        raise SystemExit(f"transcoder training ended {rec.status}: {rec.error}")
    m = rec.metrics
    print(f"  {dt:.1f}s ({m['train_tokens'] / dt:.0f} tokens/s incl. model forwards and evaluation); held-out "
          f"FVU {m['held_out_fvu']:.3f} (mean of layers), L0 {m['l0']:.1f}, dead {m['dead_fraction']:.2f}, "
          f"CE loss recovered {m['ce_loss_recovered']:.3f} ({m['ce_loss_clean']:.3f} clean, "
          f"{m['ce_loss_replaced']:.3f} replaced)   [{load_line()}]", flush=True)
    return {**m, "seconds": dt, "n_layers": n_layers}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {load_line()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="iwb-bench-circuits-") as tmp:
        state = open_state(args, args.home or Path(tmp))
        try:
            return run(state, args)
        finally:
            state.shutdown()
            state.close()


def run(state: WorkbenchState, args: argparse.Namespace) -> dict[str, Any]:
    lm = state.require_model()
    training = train(state, args)
    settings = CircuitSettings(set_id=training["set_id"], max_feature_nodes=args.max_feature_nodes,
                               batch_size=args.batch_rows, validate_edges=args.validate_edges,
                               validate_freeze=args.validate_freeze)
    print(f"graphs: {args.max_feature_nodes} feature rows at most, {args.batch_rows} rows per backward, prune "
          f"{settings.node_threshold}/{settings.edge_threshold}, {args.validate_edges} edges checked "
          f"(freeze {args.validate_freeze})", flush=True)
    graphs = []
    for i, prompt in enumerate(PROMPTS[:args.prompts]):
        rec = state.circuits.trace(prompt, settings)
        if rec.status != "done":
            raise SystemExit(f"prompt {i}: tracing ended {rec.status}: {rec.error}")
        s = rec.summary
        corr = (s.get("validation") or {}).get("pearson")
        graphs.append({"id": rec.id, "tokens": s["n_tokens"], "seconds": s["graph_seconds"],
                       "attribution_seconds": s["timings"]["total"], "replacement": s["replacement_score"],
                       "completeness": s["completeness_score"], "correlation": corr,
                       "active": s["n_active_features"], "features": s["n_features"], "logits": len(s["logits"])})
        top = s["logits"][0]
        print(f"prompt {i} ({s['n_tokens']} tokens, top {top['token']!r} p={top['probability']:.2f}): graph "
              f"{s['graph_seconds']:.1f}s, {s['n_active_features']} active features, {s['n_features']} rows, "
              f"{s['n_pruned_nodes']} nodes after pruning; replacement {s['replacement_score']:.3f}, completeness "
              f"{s['completeness_score']:.3f}, intervention correlation "
              f"{'n/a' if corr is None else f'{corr:.3f}'}   [{load_line()}]", flush=True)

    first = state.circuits.graph(graphs[0]["id"])
    fitted = state.transcoders.fitted(training["set_id"])
    with state.patches.original:
        base = dense_rows(lm.model, fitted.transcoders, first, args.baseline_rows)
        # ours again, warm like the baseline (the first graph of the run also paid one-off costs)
        t0 = time.perf_counter()
        again = attribute(lm.model, fitted.transcoders, torch.tensor(first.input_ids), options=settings.options())
        ours_s = min(graphs[0]["attribution_seconds"], time.perf_counter() - t0)
    if not torch.allclose(again.adjacency, first.adjacency, atol=1e-5, rtol=1e-4):
        raise SystemExit("the re-timed attribution of prompt 0 differs from the traced graph")
    how = "measured" if base.rows_done == base.rows_total else f"extrapolated from {base.rows_done} rows"
    print(f"prompt 0 rows ({base.rows_total}): ours (batched backward, {args.batch_rows} rows per pass; best of the "
          f"traced graph and a warm re-run) "
          f"{ours_s:.1f}s vs one backward per row {base.seconds:.1f}s ({how}); max |difference| / max |weight| "
          f"{base.max_rel_diff:.1e}   [{load_line()}]", flush=True)

    med_c = statistics.median(g["completeness"] for g in graphs)
    med_r = statistics.median(g["replacement"] for g in graphs)
    corrs = [g["correlation"] for g in graphs if g["correlation"] is not None]
    med_corr = statistics.median(corrs) if corrs else float("nan")
    ratio = base.seconds / ours_s
    print(f"median completeness {med_c:.3f} (target 0.8), replacement {med_r:.3f} (0.5), intervention correlation "
          f"{med_corr:.3f} (0.8), graph time {statistics.median(g['seconds'] for g in graphs):.1f}s (60 s); "
          f"one-backward-per-row time / ours = {ratio:.2f}", flush=True)
    return {"training": training, "graphs": graphs, "baseline": base._asdict(), "ours_seconds": ours_s,
            "median_completeness": med_c, "median_replacement": med_r, "median_correlation": med_corr,
            "ratio": ratio}


if __name__ == "__main__":
    main()
