"""One training run, start to finish, in the calling (worker) thread: contexts, SAE init (b_dec from the
data, input scale), Lightning fit with callbacks, checkpoint/resume, held-out metrics, CE-loss recovered,
artifacts and rows. Lightning stays in training/; the SAE is a plain nn.Module."""
from __future__ import annotations

import gc
import logging
import math
import threading
from pathlib import Path
from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch
from torch import Tensor

from ..activations.corpus import load_texts, make_contexts
from ..activations.store import read_manifest, read_trace
from ..events import TrainingCancelled, TrainingDone
from ..model.loader import LoadedModel
from ..model.placement import lightning_placement
from ..sae.config import SAEConfig
from ..sae.model import SparseAutoencoder
from ..sae.sparse import geometric_median
from .callbacks import CancelCallback, CheckpointCallback, Progress, ProgressCallback, peak_memory_bytes
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .datamodule import ActivationDataModule, ActivationStream
from .deps import RunDeps
from .ddp import is_multiprocess, leader_env, local_rank
from .evaluate import collect_held_out, final_metrics_dict, held_out_metrics, splice_metrics
from .lit_module import SAETrainingModule

log = logging.getLogger(__name__)


class RunContexts(NamedTuple):
    train: Tensor
    """``[n_ctx ctx]`` token ids to train on."""
    held_out: Tensor
    """``[n_ctx ctx]`` held-out token ids for the final metrics."""


class RunOutcome(NamedTuple):
    status: str
    """done | cancelled | interrupted"""
    sae_ids: list[str]
    metrics: dict[str, Any]


def build_contexts(lm: LoadedModel, cfg: TrainingConfig, corpus_path: Path | None) -> RunContexts:
    texts = load_texts(corpus_path)
    per_ctx = cfg.context_size - 1
    n_eval = math.ceil(cfg.eval_tokens / per_ctx) + cfg.ce_eval_contexts
    n_train = 0 if cfg.trace_dir else math.ceil(cfg.total_tokens / per_ctx)
    ctx = make_contexts(lm.tokenizer, texts, cfg.context_size, max_contexts=n_train + n_eval)
    if ctx.shape[0] < n_train + n_eval:  # corpus smaller than the budget: hold out a fraction, loop epochs
        k = max(1, min(n_eval, int(round(ctx.shape[0] * cfg.held_out_fraction))))
    else:
        k = n_eval
    if ctx.shape[0] - k < 1:
        raise ValueError("the corpus is too small to hold out contexts; upload a larger one or shorten contexts")
    return RunContexts(ctx[: ctx.shape[0] - k], ctx[ctx.shape[0] - k:])


def _init_sample(cfg: TrainingConfig, lm: LoadedModel, train: Tensor, lock: Any) -> dict[str, Tensor]:
    n = min(cfg.batch_size, 4096)
    if cfg.trace_dir:
        chunks, got = [], 0
        for c in read_trace(cfg.trace_dir, chunk_tokens=n):
            chunks.append(c)
            got += c.shape[0]
            if got >= n:
                break
        return {cfg.hook_names[0]: torch.cat(chunks)[:n]}
    batches = collect_held_out(lm, train, cfg.hook_names, n, cfg.model_batch_size, lock)
    return {h: torch.cat([b[h] for b in batches]) for h in cfg.hook_names}


def new_saes(cfg: TrainingConfig, lm: LoadedModel, sample: dict[str, Tensor]) -> list[SparseAutoencoder]:
    saes = []
    for i, h in enumerate(cfg.hook_names):
        x = sample[h].float()
        scale = math.sqrt(x.shape[1]) / float(x.norm(dim=1).mean().clamp_min(1e-8)) if cfg.normalize else 1.0
        scfg = SAEConfig(
            d_in=lm.d_model, d_sae=cfg.d_sae, architecture=cfg.architecture, k=cfg.k,
            l1_coefficient=cfg.l1_coefficient, hook_name=h, model_id=lm.model_id, model_revision=lm.revision,
            model_class_name=lm.architecture, context_size=cfg.context_size,
            dataset_path=cfg.trace_dir or cfg.corpus,
            normalize_activations="expected_average_only_in" if cfg.normalize else "none", norm_scale=scale)
        sae = SparseAutoencoder(scfg)
        sae.reset_parameters(seed=cfg.seed + i)
        with torch.no_grad():
            xs = x * sae.scale
            if cfg.b_dec_init == "geometric_median":
                sae.b_dec.copy_(geometric_median(xs))
            elif cfg.b_dec_init == "mean":
                sae.b_dec.copy_(xs.mean(0))
        saes.append(sae)
    return saes


def _trainer(cfg: TrainingConfig, max_steps: int, callbacks: list[pl.Callback], root: Path,
             device: torch.device | None = None) -> pl.Trainer:
    accelerator, devices = cfg.accelerator, cfg.devices
    if device is not None and accelerator == "auto" and not is_multiprocess(cfg):
        accelerator, devices = lightning_placement(device)  # one process trains on the model's device
    return pl.Trainer(
        max_steps=max_steps, max_epochs=-1, accelerator=accelerator, devices=devices,
        strategy=cfg.strategy, num_nodes=cfg.num_nodes, precision=cfg.precision, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False, callbacks=callbacks,
        default_root_dir=str(root),
    )


def train_run(deps: RunDeps, run_id: str, cfg: TrainingConfig, lm: LoadedModel, cancel: threading.Event,
              *, resume: bool = False) -> RunOutcome:
    """Train (or continue) run ``run_id``; writes rows, checkpoints, artifacts and events. The hooks were
    checked against the model when the run was queued (``TrainingService``)."""
    runs, publish, lock = deps.runs, deps.publish, deps.scope
    run_dir = deps.runs_dir / run_id
    ckpt_dir = run_dir / "checkpoint"
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    if cfg.trace_dir:
        man = read_manifest(cfg.trace_dir)
        if man.hook_name != cfg.hook_names[0] or man.d_model != lm.d_model:
            raise ValueError(f"trace {cfg.trace_dir} holds {man.hook_name} (d_model {man.d_model}); "
                             f"asked for {cfg.hook_names[0]} (d_model {lm.d_model})")
    contexts = build_contexts(lm, cfg, deps.corpus_path)
    resumed = resume and has_checkpoint(ckpt_dir)
    if resumed:
        ck = load_checkpoint(ckpt_dir)
        saes, trackers, opt_state, step, tokens = ck.saes, ck.trackers, ck.optimizer_state, ck.step, ck.tokens
    else:
        saes = new_saes(cfg, lm, _init_sample(cfg, lm, contexts.train, lock))
        trackers, opt_state, step, tokens = None, None, 0, 0
    multi = is_multiprocess(cfg)
    runs.update(run_id, status="running", step=step, tokens_seen=tokens, checkpoint_path=str(ckpt_dir), error=None)
    progress = Progress(publish, run_id, cfg.total_tokens, start_tokens=tokens, interval_s=cfg.progress_interval_s)
    module = SAETrainingModule(saes, cfg, start_step=step, optimizer_state=opt_state, trackers=trackers)
    if multi and not resumed:  # hand-off: DDP followers start from exactly these SAEs (scales, b_dec)
        save_checkpoint(ckpt_dir, list(module.saes), list(module.trackers), None, step, tokens)
    remaining_steps = max(0, cfg.total_steps - step)
    stream = ActivationStream(cfg, lm=lm, contexts=contexts.train, n_tokens=remaining_steps * cfg.batch_size,
                              skip_tokens=tokens, lock=lock)
    progress.tokens_read = lambda: stream.tokens_read
    progress.update(step=step, phase="filling buffer")

    def record(step_: int, tokens_: int, snap: dict) -> None:
        runs.add_metric(run_id, step_, tokens_, {k: v for k, v in snap.items() if k != "per_hook" or len(v) > 1})
        runs.update(run_id, step=step_, tokens_seen=tokens_)

    prog_cb = ProgressCallback(progress, record, tokens, lm.device)

    def save(m: SAETrainingModule, tokens_: int) -> None:
        opt = m.trainer.optimizers[0] if m.trainer.optimizers else None
        save_checkpoint(ckpt_dir, list(m.saes), list(m.trackers), opt, m.step, tokens_)

    trainer: pl.Trainer | None = None
    progress.start()
    try:
        if remaining_steps:
            if cfg.lr_finder and not step:
                module.lr = suggest_lr(cfg, module, lm, contexts.train, lock, run_dir)
            callbacks = [prog_cb, CheckpointCallback(cfg.checkpoint_every, save, lambda: prog_cb.tokens),
                         CancelCallback(cancel)]
            trainer = _trainer(cfg, remaining_steps, callbacks, run_dir, lm.device)
            if multi:  # Lightning re-executes this command line per extra process: they follow this run
                with leader_env(run_id):
                    trainer.fit(module, datamodule=ActivationDataModule(stream))
            else:
                trainer.fit(module, datamodule=ActivationDataModule(stream))
        world = trainer.world_size if trainer is not None else 1
        if cancel.is_set():
            why = getattr(cancel, "reason", "cancelled")
            runs.update(run_id, status=why, step=module.step, tokens_seen=prog_cb.tokens)
            publish(TrainingCancelled(run_id=run_id, step=module.step, tokens=prog_cb.tokens, reason=why))
            return RunOutcome(why, [], {})
        progress.update(phase="evaluating")
        out_saes = [s.cpu().eval() for s in module.saes]
        dead = [t.dead_fraction() for t in module.trackers]
        metrics = evaluate_saes(lm, out_saes, cfg, contexts.held_out, lock)
        peak = peak_memory_bytes(lm.device)
        sae_ids, per_hook = [], []
        for sae, held, splice, dead_f in zip(out_saes, *metrics, dead):
            m = final_metrics_dict(held, splice, dead_f, peak, {"run_id": run_id, "train_tokens": prog_cb.tokens,
                                                               "steps": module.step, "world_size": world})
            sae.cfg.extra = {"run_id": run_id, **{k: v for k, v in m.items() if k != "density_histogram"}}
            sid = deps.saes.register(sae, source="trained", run_id=run_id, metrics=m)
            sae_ids.append(sid)
            per_hook.append({"hook_name": sae.cfg.hook_name, "sae_id": sid, **m})
        summary = {"sae_ids": sae_ids, "per_hook": per_hook, **{k: v for k, v in per_hook[0].items()
                                                               if k not in ("hook_name", "sae_id")}}
        runs.update(run_id, status="done", metrics=summary, sae_id=sae_ids[0], step=module.step,
                    tokens_seen=prog_cb.tokens)
        publish(TrainingDone(run_id=run_id, sae_ids=sae_ids, metrics=_brief(per_hook)))
        return RunOutcome("done", sae_ids, summary)
    finally:
        progress.stop()
        del trainer, module, stream
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def follow_run(settings: Any, run_id: str) -> RunOutcome:
    """Rank > 0 of a multi-process CLI run: train alongside rank 0 and write nothing.

    Reads the run's config and rank 0's hand-off (or resume) checkpoint, loads the model (on
    ``cuda:LOCAL_RANK`` when the run trains on CUDA), builds the same contexts and takes part in every step;
    evaluation, rows, checkpoints, SAEs and events stay with rank 0.
    """
    from ..model.loader import load_model, pick_device
    from ..store.corpora import CorpusRepo
    from ..store.db import Database
    from ..store.runs import RunRepo

    db = Database(settings.db_path)
    try:
        rec = RunRepo(db).get(run_id)
        if rec is None:
            raise ValueError(f"DDP follower: run {run_id!r} is not in {settings.db_path}")
        cfg = TrainingConfig.from_dict(rec.config)
        corpus = None if cfg.corpus in (None, "", "default") else CorpusRepo(db).get(cfg.corpus)
    finally:
        db.close()
    ckpt_dir = settings.runs_dir / run_id / "checkpoint"
    if not has_checkpoint(ckpt_dir):
        raise ValueError(f"DDP follower: rank 0 left no hand-off checkpoint in {ckpt_dir}")
    dev = pick_device(settings.device)
    device = f"cuda:{local_rank()}" if dev.type == "cuda" else str(dev)
    lm = load_model(settings.model, device=device, dtype=settings.dtype, cache_dir=settings.model_cache_dir,
                    quantization=settings.quantization)
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    lock = threading.RLock()
    contexts = build_contexts(lm, cfg, Path(corpus.path) if corpus else None)
    ck = load_checkpoint(ckpt_dir)
    module = SAETrainingModule(ck.saes, cfg, start_step=ck.step, optimizer_state=ck.optimizer_state,
                               trackers=ck.trackers)
    remaining_steps = max(0, cfg.total_steps - ck.step)
    if remaining_steps:
        stream = ActivationStream(cfg, lm=lm, contexts=contexts.train, n_tokens=remaining_steps * cfg.batch_size,
                                  skip_tokens=ck.tokens, lock=lock)
        trainer = _trainer(cfg, remaining_steps, [CancelCallback(threading.Event())], settings.runs_dir / run_id)
        trainer.fit(module, datamodule=ActivationDataModule(stream))
    return RunOutcome("done", [], {})


def _brief(per_hook: list[dict]) -> list[dict]:
    keys = ("hook_name", "sae_id", "held_out_fvu", "explained_variance", "l0", "dead_fraction",
            "ce_loss_recovered", "kl_with_sae", "peak_memory_bytes")
    return [{k: p.get(k) for k in keys} for p in per_hook]


def evaluate_saes(lm: LoadedModel, saes: list[SparseAutoencoder], cfg: TrainingConfig, held_out: Tensor,
                  lock: Any) -> tuple[list, list]:
    names = [s.cfg.hook_name for s in saes]
    batches = collect_held_out(lm, held_out, names, cfg.eval_tokens, cfg.model_batch_size, lock)
    held = held_out_metrics([s.to(lm.device) for s in saes], batches)
    splice: list = [None] * len(saes)
    if cfg.ce_eval_contexts:
        splice = splice_metrics(lm, saes, held_out[: cfg.ce_eval_contexts], lock)
    for s in saes:
        s.cpu()
    return held, splice


def suggest_lr(cfg: TrainingConfig, module: SAETrainingModule, lm: LoadedModel, train: Tensor,
               lock: Any, root: Path) -> float:
    """Lightning's LR finder over a short separate stream; returns the suggestion (or the default)."""
    from lightning.pytorch.tuner import Tuner

    n = min(50, cfg.total_steps)
    stream = ActivationStream(cfg, lm=lm, contexts=train, n_tokens=n * cfg.batch_size, lock=lock)
    root.mkdir(parents=True, exist_ok=True)
    trainer = _trainer(cfg, n, [], root, lm.device)
    found = Tuner(trainer).lr_find(module, datamodule=ActivationDataModule(stream), num_training=n,
                                   min_lr=1e-5, max_lr=1e-1, update_attr=False)
    lr = found.suggestion() if found is not None else None
    return float(lr) if lr else cfg.learning_rate
