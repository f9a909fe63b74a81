"""SAE training, like for like: ours (sparse TopK kernels through Lightning) vs SAELens's TopK trainer
(vs a naive dense torch loop of our objective), on the same recorded activations of the default model
(layer 6 resid_post), at two token budgets. Prints tokens/s and held-out FVU for each trainer, the FVU
difference and, last, our tokens/s divided by SAELens's (target >= 3x at held-out FVU no worse than
SAELens's + 0.005).

    IWB_HOME=workspace .venv/bin/python bench/sae_training.py [--budgets 131072,1048576]

Identical for every trainer (each printed in the header):
  - data: the same recorded activations, scaled once to mean norm sqrt(d_in); the same batches in the same
    order (one fixed permutation per pass over the training tokens); the held-out FVU is measured on the
    same held-out tokens (the tail of the corpus, never trained on);
  - batch size, d_sae, k, Adam (betas 0.9/0.999), learning rate, steps = budget / batch size;
  - lr schedule: linear warm-up over 5% of the steps, constant, linear decay to 0 over the last 20%
    (ours: TrainingConfig.lr_factor; SAELens: lr_scheduler_name="constant", lr_warm_up_steps,
    lr_decay_steps, lr_end=lr). The bench checks the two schedules step by step and stops if they differ;
  - initial weights: the same tensors (decoder rows of unit norm, W_enc = W_dec^T, b_enc = 0) copied into
    each SAE; b_dec starts from the same tensor (--b-dec-init, default zeros: SAELens 6 has no
    geometric-median or mean init, so the bench computes that tensor itself when asked);
  - AuxK: k_aux = d_in // 2 dead latents, coefficient --aux-coef (default 1/32, Gao et al.; SAELens's
    default is 1.0), scaled by min(n_dead / k_aux, 1) in both; a latent is dead after --dead-window steps
    without firing (SAELens dead_feature_window = W steps; ours dead_after_tokens = (W+1) * batch, the
    same latents on the same step since SAELens counts "> W" and ours ">= tokens").

SAELens is configured as its documentation recommends for TopK training on cached activations: a
TopKTrainingSAE (rescale_acts_by_decoder_norm=True, its default) driven by its own SAETrainer with an
iterator of activation batches as the data provider, float32, no autocast. use_sparse_activations=True is
tried first; where its backward fails (it does on CPU: the COO activations meet the decoder-norm rescale)
the bench says so and falls back to dense activations.

Ours runs with the shipped TrainingConfig defaults, which since issue #14 match SAELens where it matters:
  - gradient clipping: grad_clip_norm = 1.0 (default), the global grad norm of each SAE measured on the
    loss in SAELens's units (our FVU gradients times the batch's per-token variance), i.e. SAELens's
    SAETrainer's hard-coded clip at 1.0 on the same gradients;
  - AuxK activations: aux_k_on = "raw" (default): the top-k_aux dead pre-activations are used raw, as SAELens.
A second line runs ours with the defaults before issue #14 (grad_clip_norm=None, aux_k_on="post_relu"; the
loss units are the new ones), to show what the two settings are worth.

What stays different (SAELens cannot be configured otherwise):
  - decoder norm: ours keeps decoder rows at unit norm (the parallel gradient component is removed, rows
    renormalised after each step); SAELens leaves them free and selects/reports activations as if
    normalised (rescale_acts_by_decoder_norm);
  - nothing else: since 2026-11-27 ours minimises its loss in SAELens's units (squared error summed over
    d_in, averaged over tokens; ``training.objectives.per_token``). It used to minimise FVU (squared error
    / the batch's total variance), which Adam would not mind but for its eps: FVU gradients are ~570x
    smaller here, small enough for eps = 1e-8 to damp rarely firing latents. The same dense loop, same data,
    init and order, 131k tokens: held-out FVU 0.1917 minimising FVU vs 0.1787 in SAELens's units (SAELens
    0.1805) — the whole of the +0.0113 gap measured before the change. FVU with eps / 567 (the per-token
    variance) gives 0.1820: eps is most of it, the rest is FVU weighting each batch by its own variance.

The headline compares ours as shipped with SAELens; the speed ratio printed last is that one. A held-out
FVU worse than SAELens's is reported, not tuned away. What was found at 131k tokens before the defaults
changed, with a dense loop switching one choice at a time (held-out FVU, lower is better):
  - gradient clipping is worth about 0.02 to either trainer (d_sae 4608: ours 0.198 -> 0.181; d_sae 1152:
    0.226 -> 0.202), likely because Adam's second moment remembers the large early gradients and shrinks
    the later steps, while clipped gradients keep them at full size;
  - AuxK on the raw dead pre-activations (SAELens) instead of their ReLU (ours) is worth 0.009 at d_sae
    4608, where hundreds of latents die (0.181 -> 0.172 with clipping), and nothing at d_sae 1152;
  - with both, ours is 0.002 (d_sae 4608: 0.172 vs 0.173) to 0.015 (d_sae 1152) better than SAELens: the
    unit-norm decoder is not what costs FVU.

Measured 2026-11-27 on the 2-core CPU, no other job running (a niced test run started only after it),
after the loss-units change, the built-in corpus recorded again (139,953 training tokens, 16,384 held out):
    == 131072 tokens, 64 steps ==
    ours (sparse topk, lightning)            6028 tokens/s (cpu     43s)   held-out FVU 0.1715   dead latents 27
    ours, no clip, relu auxk                 4886 tokens/s (cpu     53s)   held-out FVU 0.1958   dead latents 270
    saelens TopK (dense)                     1511 tokens/s (cpu    168s)   held-out FVU 0.1731   dead latents 33
    naive dense torch (our objective)        1850 tokens/s (cpu    138s)   held-out FVU 0.1715   dead latents 28
    == 1048576 tokens, 512 steps (7.49 passes) ==
    ours (sparse topk, lightning)            6423 tokens/s (cpu    319s)   held-out FVU 0.0729   dead latents 1
    ours, no clip, relu auxk                 6072 tokens/s (cpu    337s)   held-out FVU 0.0793   dead latents 40
    saelens TopK (dense)                     1432 tokens/s (cpu   1412s)   held-out FVU 0.0734   dead latents 2
Ours - SAELens's held-out FVU: -0.0016 at 131k tokens and -0.0005 at 1M (target <= +0.005: met at both);
tokens/s ratio 3.99 and 4.48 (target >= 3: met at both); the naive dense loop of our objective lands on the
same FVU as the Lightning run (0.1715), so the sparse kernels change speed, not the result. SAELens's
use_sparse_activations fails on CPU (aten::view on SparseCPU) and falls back to dense. Before the change the
same bench measured +0.0113 (ours 0.1918 vs SAELens 0.1805 on the earlier recording, a loaded machine).

The naive line is our objective written densely in plain torch (dense TopK, dense decode, dense raw AuxK,
the same per-SAE clipping, schedule and decoder constraint): it isolates the sparse kernels from Lightning
and checks that both land on the same FVU. It runs at the first budget only by default (--naive
all|first|none; it costs as much as SAELens).

Timings: tokens/s is wall clock; the CPU seconds beside it show a shared machine (wall >> CPU / threads).

Activations are recorded once into $IWB_HOME/bench/l6_resid_post (a Parquet trace) and reused. The
built-in corpus holds ~156k tokens, so budgets above it take several passes over the same training
tokens (printed); --corpus points at a larger JSONL/txt corpus to avoid that.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import NamedTuple, Self

os.environ.setdefault("TQDM_DISABLE", "1")  # SAELens's trainer draws a progress bar
import torch

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interpretability_workbench.activations.corpus import load_texts, make_contexts
from interpretability_workbench.activations.store import (
    read_manifest,
    read_trace,
    write_trace,
)
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder
from interpretability_workbench.sae.sparse import geometric_median
from interpretability_workbench.training.config import TrainingConfig
from interpretability_workbench.training.objectives import (
    DeadTracker,
    per_token,
    remove_parallel_grads,
)

HOOK = "blocks.6.hook_resid_post"
OURS = "ours (sparse topk, lightning)"
OURS_OLD = "ours, no clip, relu auxk"
CONTEXT = 128
SIDE_CAR = "bench.json"


class Result(NamedTuple):
    tokens_per_s: float
    """Training tokens per wall-clock second (the headline)."""
    cpu_s: float
    """Process CPU seconds of the timed loop (all threads): on a shared machine, wall time / CPU time
    shows how much of the run was spent waiting for cores."""
    fvu: float
    """Held-out fraction of variance unexplained."""
    dead: int
    """Latents dead (by the shared window) at the end of training."""


class Data(NamedTuple):
    train: torch.Tensor
    """Training pool ``[n_train d_in]`` (scaled)."""
    held: torch.Tensor
    """Held-out tokens ``[n_held d_in]`` (scaled with the training pool's factor)."""
    token_variance: float
    """Mean squared distance of a training token from the pool mean: SAELens's loss (squared error summed
    over d_in, averaged over tokens) is ours (squared error / batch variance) times about this."""


# data --------------------------------------------------------------------------------------------------
def record(trace: Path, home: Path, corpus: str | None, n_tokens: int) -> Path:
    """Record up to ``n_tokens`` of ``HOOK`` (fewer when the corpus runs out), once."""
    side = trace / SIDE_CAR
    if side.is_file():
        meta = json.loads(side.read_text())
        if meta.get("corpus") == (corpus or "default") and (meta["requested"] >= n_tokens or
                                                              read_manifest(trace).n_tokens >= n_tokens):
            return trace
    from interpretability_workbench.model.loader import load_model

    lm = load_model("default", device="cpu", dtype="float32", cache_dir=home / "models")
    ctx = make_contexts(lm.tokenizer, load_texts(corpus), CONTEXT, max_contexts=math.ceil(n_tokens / (CONTEXT - 1)))
    t = time.perf_counter()
    man = write_trace(lm, ctx, HOOK, trace, n_tokens=n_tokens, batch_size=32, corpus=corpus or "default")
    side.write_text(json.dumps({"corpus": corpus or "default", "requested": n_tokens}))
    print(f"recorded {man.n_tokens} tokens of {HOOK} in {time.perf_counter() - t:.0f}s", flush=True)
    return trace


def load_data(trace: Path, held_out: int) -> Data:
    data = torch.cat(list(read_trace(trace)))
    if len(data) < 2 * held_out:
        raise SystemExit(f"the trace holds {len(data)} tokens: too few for {held_out} held-out tokens")
    train, held = data[:-held_out], data[-held_out:]
    scale = math.sqrt(data.shape[1]) / float(train.norm(dim=1).mean())  # same normalisation for everyone
    train, held = train * scale, held * scale
    return Data(train, held, float((train - train.mean(0)).pow(2).sum(1).mean()))


def batch_order(n: int, batch: int, steps: int, seed: int) -> torch.Tensor:
    """``[steps batch]`` token indices: pass p over the training pool is ``randperm(n, seed + p)``."""
    passes = math.ceil(steps * batch / n)
    idx = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(seed + p)) for p in range(passes)])
    return idx[: steps * batch].view(steps, batch)


def batches(x: torch.Tensor, order: torch.Tensor) -> Iterator[torch.Tensor]:
    for row in order:
        yield x[row]


class Clock:
    """Wall and process CPU time of a block."""

    def __enter__(self) -> Self:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def fvu(recon: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    with torch.no_grad():
        err = sum(float((recon(x[s: s + 4096]) - x[s: s + 4096]).pow(2).sum()) for s in range(0, len(x), 4096))
    return err / float((x - x.mean(0)).pow(2).sum())


# shared settings -------------------------------------------------------------------------------------------
def training_config(a: argparse.Namespace, steps: int) -> TrainingConfig:
    """Our config for one budget; SAELens's settings are derived from it (warm-up/decay steps, window)."""
    return TrainingConfig(hook_names=[HOOK], d_sae=a.d_sae, k=a.k, lr=a.lr, total_tokens=steps * a.batch_size,
                          batch_size=a.batch_size, normalize=False, accelerator="cpu", b_dec_init=a.b_dec_init,
                          aux_k=None, aux_k_coefficient=a.aux_coef,
                          dead_after_tokens=(a.dead_window + 1) * a.batch_size, seed=a.seed)


def warmup_decay_steps(cfg: TrainingConfig) -> tuple[int, int]:
    n = cfg.total_steps
    return max(1, int(n * cfg.warmup_fraction)), int(n * cfg.decay_fraction)


def check_schedules(cfg: TrainingConfig) -> float:
    """Step both trainers' schedulers side by side; return the largest lr difference (must be ~0)."""
    from sae_lens.training.optim import get_lr_scheduler

    n, lr = cfg.total_steps, cfg.learning_rate
    warm, decay = warmup_decay_steps(cfg)
    p = [torch.nn.Parameter(torch.zeros(1))]
    ours_opt, theirs_opt = torch.optim.Adam(p, lr=lr), torch.optim.Adam(p, lr=lr)
    ours = torch.optim.lr_scheduler.LambdaLR(ours_opt, cfg.lr_factor)
    theirs = get_lr_scheduler("constant", optimizer=theirs_opt, training_steps=n, lr=lr, warm_up_steps=warm,
                              decay_steps=decay, lr_end=lr, num_cycles=1)
    worst = 0.0
    for _ in range(n):
        worst = max(worst, abs(ours_opt.param_groups[0]["lr"] - theirs_opt.param_groups[0]["lr"]))
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()
    return worst


def initial_weights(d_in: int, a: argparse.Namespace, first: torch.Tensor) -> dict[str, torch.Tensor]:
    """The tensors every trainer starts from; ``first`` = the first training tokens in data order."""
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=a.d_sae, k=a.k, hook_name=HOOK))
    sae.reset_parameters(seed=a.seed)
    if a.b_dec_init == "mean":
        sae.b_dec.data.copy_(first.mean(0))
    elif a.b_dec_init == "geometric_median":
        sae.b_dec.data.copy_(geometric_median(first))
    return {k: v.detach().clone() for k, v in sae.state_dict().items() if k in ("W_enc", "W_dec", "b_enc", "b_dec")}


def our_sae(d_in: int, a: argparse.Namespace, init: dict[str, torch.Tensor]) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=a.d_sae, k=a.k, hook_name=HOOK))
    sae.load_state_dict({**sae.state_dict(), **init})
    return sae


# trainers ------------------------------------------------------------------------------------------------
def train_ours(d: Data, order: torch.Tensor, cfg: TrainingConfig, a, init) -> Result:
    """Our Lightning module as the runner drives it (clipping and AuxK as ``cfg`` says)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, IterableDataset

    from interpretability_workbench.training.lit_module import SAETrainingModule

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no device/tip chatter between the lines
    sae = our_sae(d.train.shape[1], a, init)

    class Stream(IterableDataset):
        def __iter__(self):
            return batches(d.train, order)

    module = SAETrainingModule([sae], cfg)
    trainer = pl.Trainer(max_steps=cfg.total_steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with Clock() as c:
        trainer.fit(module, train_dataloaders=DataLoader(Stream(), batch_size=None))
    return Result(order.numel() / c.wall, c.cpu, fvu(lambda b: sae(b).x_hat, d.held),
                  int(module.trackers[0].dead_mask().sum()))


def saelens_trainer(d_in: int, order_or_batches, cfg: TrainingConfig, a, init, sparse: bool):
    from sae_lens import LoggingConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    sae = TopKTrainingSAE(TopKTrainingSAEConfig(
        d_in=d_in, d_sae=a.d_sae, k=a.k, dtype="float32", device="cpu", apply_b_dec_to_input=True,
        normalize_activations="none", use_sparse_activations=sparse, rescale_acts_by_decoder_norm=True,
        aux_loss_coefficient=a.aux_coef, decoder_init_norm=1.0))
    with torch.no_grad():
        for name, t in init.items():
            getattr(sae, name).copy_(t)
    warm, decay = warmup_decay_steps(cfg)
    tcfg = SAETrainerConfig(
        total_training_samples=cfg.total_steps * a.batch_size, train_batch_size_samples=a.batch_size,
        lr=cfg.learning_rate, lr_end=cfg.learning_rate, lr_scheduler_name="constant", lr_warm_up_steps=warm,
        lr_decay_steps=decay, adam_beta1=0.9, adam_beta2=0.999, device="cpu", autocast=False,
        dead_feature_window=a.dead_window, n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False))
    return sae, SAETrainer(cfg=tcfg, sae=sae, data_provider=order_or_batches)


def probe_sparse(d: Data, order: torch.Tensor, a, init) -> str | None:
    """One SAELens step with use_sparse_activations=True; None if it works, else why it failed."""
    cfg = training_config(a, 2)
    _, trainer = saelens_trainer(d.train.shape[1], batches(d.train, order[:2]), cfg, a, init, sparse=True)
    try:
        trainer.fit()
    except (RuntimeError, NotImplementedError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:110]}"
    return None


def train_saelens(d: Data, order: torch.Tensor, cfg: TrainingConfig, a, init, sparse: bool) -> Result:
    sae, trainer = saelens_trainer(d.train.shape[1], batches(d.train, order), cfg, a, init, sparse)
    with Clock() as c:
        trainer.fit()
    return Result(order.numel() / c.wall, c.cpu, fvu(lambda b: sae(b), d.held), int(trainer.dead_neurons.sum()))


def train_naive(d: Data, order: torch.Tensor, cfg: TrainingConfig, a, init) -> Result:
    """Our objective (TopK + raw AuxK in SAELens's loss units, unit-norm decoder, per-SAE clipping), dense,
    in a plain torch loop."""
    sae = our_sae(d.train.shape[1], a, init)
    tracker = DeadTracker(a.d_sae, cfg.dead_after_tokens)
    k_aux = d.train.shape[1] // 2
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor)
    c = Clock().__enter__()
    for b in batches(d.train, order):
        pre = (b - sae.b_dec) @ sae.W_enc + sae.b_enc  # [batch d_sae]
        vals, idx = pre.topk(a.k, dim=-1, sorted=False)
        f = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        err = f @ sae.W_dec + sae.b_dec - b
        var = (b - b.mean(0)).pow(2).sum()
        loss = err.pow(2).sum() / var
        dead = tracker.dead_mask()
        n_dead = int(dead.sum())
        if n_dead:
            avals, aidx = pre.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1, sorted=False)
            e_hat = torch.zeros_like(pre).scatter(-1, aidx, avals) @ sae.W_dec
            loss = loss + a.aux_coef * min(n_dead / k_aux, 1.0) * (e_hat + err.detach()).pow(2).sum() / var
        loss = per_token(loss, var, b.shape[0])  # minimised in SAELens's units, as the product does
        opt.zero_grad()
        loss.backward()
        remove_parallel_grads(sae)
        if cfg.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip_norm)
        opt.step()
        sched.step()
        sae.normalize_decoder()
        tracker.update(idx[vals > 0], b.shape[0])
    c.__exit__()
    return Result(order.numel() / c.wall, c.cpu, fvu(lambda b: sae(b).x_hat, d.held), int(tracker.dead_mask().sum()))


# main ----------------------------------------------------------------------------------------------------
def header(a, d: Data, budgets: list[int], sparse_error: str | None) -> None:
    n, held = len(d.train), len(d.held)
    saelens_acts = "dense activations" if sparse_error else "use_sparse_activations=True"
    naive_at = {"all": "every budget", "first": f"{budgets[0]} only", "none": "no budget"}
    lines = [
        (f"data: {HOOK} of the default model; {n} training tokens, {held} held-out tokens (corpus tail), "
         f"d_in {d.train.shape[1]}, all scaled to mean norm sqrt(d_in)"),
        (f"budgets: {', '.join(f'{b} tokens = {b // a.batch_size} steps ({b / n:.2f} passes)' for b in budgets)}; "
         f"naive dense at {naive_at[a.naive]}"),
        (f"shared: batch {a.batch_size}, d_sae {a.d_sae}, k {a.k}, Adam(0.9, 0.999) lr {a.lr:g}, warm-up 5% / "
         f"constant / linear decay to 0 over the last 20%, same batches in the same order (seed {a.seed})"),
        (f"shared init: decoder rows unit norm, W_enc = W_dec^T, b_enc = 0, b_dec = {a.b_dec_init} "
         f"(same tensors in every SAE)"),
        (f"shared AuxK: k_aux = d_in // 2 = {d.train.shape[1] // 2}, coefficient {a.aux_coef:g}, x min(n_dead/k_aux, 1); "
         f"dead after {a.dead_window} steps ({(a.dead_window + 1) * a.batch_size} tokens) without firing"),
        ("ours: SAETrainingModule (sparse TopK encode/decode kernels + AuxK) under a Lightning Trainer; "
         "decoder rows kept at unit norm; loss = squared error + coef * AuxK, summed over d_in, mean over "
         "tokens (SAELens's units); shipped defaults: grad_clip_norm=1.0, aux_k_on='raw'"),
        ("ours, no clip, relu auxk: the same with grad_clip_norm=None, aux_k_on='post_relu' (the defaults before "
         "issue #14)"),
        (f"saelens {sae_lens_version()}: TopKTrainingSAE(rescale_acts_by_decoder_norm=True, {saelens_acts}, "
         "aux_loss_coefficient, decoder_init_norm=1.0) + SAETrainer(constant scheduler with lr_warm_up_steps / "
         "lr_decay_steps, lr_end=lr, dead_feature_window); its trainer clips grad norm at 1.0"),
    ]
    if sparse_error:
        lines.append(f"saelens use_sparse_activations=True failed on CPU ({sparse_error}); fell back to dense")
    lines.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n".join(lines), flush=True)


def sae_lens_version() -> str:
    import sae_lens

    return sae_lens.__version__


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budgets", default="131072,1048576", help="training tokens per trainer, comma-separated")
    p.add_argument("--held-out", type=int, default=16_384)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--d-sae", type=int, default=4608)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--aux-coef", type=float, default=1 / 32)
    p.add_argument("--dead-window", type=int, default=24, help="steps without firing before a latent is dead")
    p.add_argument("--b-dec-init", choices=("zeros", "mean", "geometric_median"), default="zeros")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--naive", choices=("first", "all", "none"), default="first",
                   help="budgets that also run the naive dense loop")
    p.add_argument("--corpus", default=None, help="corpus file to record (default: the built-in corpus)")
    p.add_argument("--trace", default=None, help="trace folder (default $IWB_HOME/bench/l6_resid_post)")
    a = p.parse_args()
    budgets = sorted(int(b) for b in a.budgets.split(","))
    home = Path(os.environ.get("IWB_HOME", Path(__file__).resolve().parents[1] / "workspace"))
    trace = Path(a.trace) if a.trace else home / "bench" / ("l6_resid_post" + (f"_{Path(a.corpus).stem}" if a.corpus else ""))
    d = load_data(record(trace, home, a.corpus, budgets[-1] + a.held_out), a.held_out)
    d_in = d.train.shape[1]
    orders = {b: batch_order(len(d.train), a.batch_size, b // a.batch_size, a.seed) for b in budgets}
    first = d.train[orders[budgets[0]].reshape(-1)[:4096]]
    init = initial_weights(d_in, a, first)
    sparse_error = probe_sparse(d, orders[budgets[0]], a, init)
    header(a, d, budgets, sparse_error)
    saelens_name = f"saelens TopK ({'dense' if sparse_error else 'sparse'})"
    summary = []
    for i, budget in enumerate(budgets):
        cfg = training_config(a, budget // a.batch_size)
        gap = check_schedules(cfg)
        if gap > 1e-12 * cfg.learning_rate:
            raise SystemExit(f"lr schedules differ by {gap:g} at {budget} tokens: fix the bench before timing")
        warm, decay = warmup_decay_steps(cfg)
        print(f"\n== {budget} tokens, {cfg.total_steps} steps (warm-up {warm}, decay {decay}; "
              f"schedules identical, max |dlr| {gap:.1e}) ==", flush=True)
        same = (d, orders[budget], cfg, a, init)
        old = dataclasses.replace(cfg, grad_clip_norm=None, aux_k_on="post_relu")
        runs: list[tuple[str, Callable[[], Result]]] = [
            (OURS, partial(train_ours, *same)),
            (OURS_OLD, partial(train_ours, d, orders[budget], old, a, init)),
            (saelens_name, partial(train_saelens, *same, sparse_error is None)),
        ]
        if a.naive == "all" or (a.naive == "first" and i == 0):
            runs.append(("naive dense torch (our objective)", partial(train_naive, *same)))
        res = {}
        for name, fn in runs:
            torch.manual_seed(a.seed)
            res[name] = r = fn()
            print(f"{name:36s} {r.tokens_per_s:8.0f} tokens/s (cpu {r.cpu_s:6.0f}s)   held-out FVU {r.fvu:.4f}   "
                  f"dead latents {r.dead}", flush=True)
        theirs = res[saelens_name]
        rows = []
        for name in (OURS_OLD, OURS):
            diff, ratio = res[name].fvu - theirs.fvu, res[name].tokens_per_s / theirs.tokens_per_s
            rows.append((name, diff, ratio, ratio >= 3 and diff <= 0.005))
            print(f"{name}: held-out FVU - saelens's = {diff:+.4f} (allowed <= +0.005); "
                  f"tokens/s / saelens's = {ratio:.2f}")
        summary.append((budget, rows))
    print("\nsummary (target: >= 3x SAELens's tokens/s at held-out FVU <= SAELens's + 0.005)")
    for budget, rows in summary:
        for name, diff, ratio, met in rows:
            print(f"  {budget:>8d} tokens, {name:30s} FVU diff {diff:+.4f}, speed ratio {ratio:.2f} "
                  f"({'met' if met else 'missed'})")
    budget, rows = summary[-1]
    print(f"ours (as shipped) tokens/s / saelens tokens/s at {budget} tokens = {rows[-1][2]:.2f}")


if __name__ == "__main__":
    main()
