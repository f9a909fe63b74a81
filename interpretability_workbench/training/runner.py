"""One training run, start to finish, in the calling (worker) thread: the held-out slice and the streamed
training data (``data.py``), SAE init from the data, Lightning fit with callbacks, checkpoints holding the
read position of the last trained batch, held-out metrics and CE-loss recovered per member, artifacts and
rows. Lightning stays in training/; the SAEs are plain nn.Modules."""
from __future__ import annotations

import dataclasses
import gc
import logging
import threading
from pathlib import Path
from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch

from ..activations.source_types import SourceSpec
from ..activations.stream import PackedBlocks, StreamState
from ..errors import Invalid
from ..events import TrainingCancelled, TrainingDone
from ..model.loader import LoadedModel
from ..model.placement import lightning_placement
from .callbacks import CancelCallback, CheckpointCallback, Progress, ProgressCallback, WorkPlan, peak_memory_bytes
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .data import Encoder, RunData, init_sample, prepare
from .datamodule import ActivationDataModule, ActivationStream
from .ddp import is_multiprocess, leader_env, local_rank
from .deps import RunDeps
from .finish import brief, evaluate_saes, member_metrics, new_saes
from .lit_module import SAETrainingModule

log = logging.getLogger(__name__)


class RunOutcome(NamedTuple):
    status: str
    """done | cancelled | interrupted"""
    sae_ids: list[str]
    metrics: dict[str, Any]


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


def _passes(stream: ActivationStream) -> int:
    """Passes over the training data the stream's reader has started (1: nothing repeated)."""
    b = stream.blocks
    if b is None:
        return 1
    r = b.reader
    return (r.packer.state.epoch if isinstance(r, PackedBlocks) else getattr(r, "epoch", 0)) + 1


def _resume_state(ck_stream: dict[str, Any] | None) -> StreamState:
    if ck_stream is None:
        raise Invalid("this run was checkpointed before read positions were stored in checkpoints, so it cannot "
                      "continue without reusing or skipping data; start a new run with the same settings")
    return StreamState.from_dict(ck_stream)


def train_run(deps: RunDeps, run_id: str, cfg: TrainingConfig, lm: LoadedModel, cancel: threading.Event,
              *, resume: bool = False) -> RunOutcome:
    """Train (or continue) run ``run_id``; writes rows, checkpoints, artifacts and events. The hooks (and a
    counted corpus against the budget) were checked when the run was queued (``TrainingService``)."""
    runs, publish, scope = deps.runs, deps.publish, deps.scope
    run_dir = deps.runs_dir / run_id
    ckpt_dir = run_dir / "checkpoint"
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    members = cfg.members
    n_hooks = len(cfg.hook_names)
    plan = WorkPlan(cfg.eval_tokens, cfg.ce_eval_contexts * cfg.context_size * (1 + n_hooks + len(members)))
    ck = load_checkpoint(ckpt_dir) if resume and has_checkpoint(ckpt_dir) else None
    step, tokens = (ck.step, ck.tokens) if ck is not None else (0, 0)
    progress = Progress(publish, run_id, cfg.train_rows, total_steps=cfg.total_steps, start_tokens=tokens,
                        start_step=step, interval_s=cfg.progress_interval_s, plan=plan)
    encoder = Encoder(lm, cfg.hook_names, cfg.model_batch_size, scope, progress)
    world = [1]
    progress.tokens_read = lambda: tokens + encoder.rows * world[0]
    trainer: pl.Trainer | None = None
    module: SAETrainingModule | None = None
    stream: ActivationStream | None = None
    progress.start()
    try:
        data = prepare(cfg, lm, deps.corpus, encoder, progress)
        if ck is not None:
            start = _resume_state(ck.stream)
            module = SAETrainingModule(ck.saes, cfg, start_step=step, optimizer_state=ck.optimizer_state,
                                       trackers=ck.trackers, members=members)
        else:
            start = data.start
            saes = new_saes(cfg, lm, init_sample(cfg, lm, deps.corpus, data, encoder), members)
            encoder.rows = 0  # the init sample is not part of the training stream
            module = SAETrainingModule(saes, cfg, members=members)
        runs.update(run_id, status="running", step=step, tokens_seen=tokens, checkpoint_path=str(ckpt_dir),
                    error=None)
        multi = is_multiprocess(cfg)
        stream = ActivationStream(cfg, data.reader, state=start)
        progress.passes = lambda: _passes(stream)
        if multi and ck is None:  # hand-off: DDP followers start from exactly these SAEs (scales, b_dec)
            save_checkpoint(ckpt_dir, list(module.saes), list(module.trackers), None, step, tokens, start.to_dict())

        def record(step_: int, tokens_: int, snap: dict) -> None:
            runs.add_metric(run_id, step_, tokens_, snap)
            runs.update(run_id, step=step_, tokens_seen=tokens_)

        prog_cb = ProgressCallback(progress, record, tokens, lm.device)
        data_stream = stream

        def save(m: SAETrainingModule, tokens_: int, trained: int) -> None:
            opt = m.trainer.optimizers[0] if m.trainer.optimizers else None
            save_checkpoint(ckpt_dir, list(m.saes), list(m.trackers), opt, m.step, tokens_,
                            data_stream.state_after(trained).to_dict())

        remaining_steps = max(0, cfg.total_steps - step)
        if remaining_steps:
            if cfg.lr_finder and not step:
                module.lr_override = suggest_lr(cfg, module, data, start, run_dir, lm.device)
            callbacks = [prog_cb, CheckpointCallback(cfg.checkpoint_every, save, lambda: prog_cb.tokens,
                                                     lambda: prog_cb.trained_batches), CancelCallback(cancel)]
            trainer = _trainer(cfg, remaining_steps, callbacks, run_dir, lm.device)
            world[0] = trainer.world_size
            if multi:  # Lightning re-executes this command line per extra process: they follow this run
                with leader_env(run_id):
                    trainer.fit(module, datamodule=ActivationDataModule(stream))
            else:
                trainer.fit(module, datamodule=ActivationDataModule(stream))
        world_size = trainer.world_size if trainer is not None else 1
        if cancel.is_set():
            why = getattr(cancel, "reason", "cancelled")
            runs.update(run_id, status=why, step=module.step, tokens_seen=prog_cb.tokens)
            publish(TrainingCancelled(run_id=run_id, step=module.step, tokens=prog_cb.tokens, reason=why))
            return RunOutcome(why, [], {})
        out_saes = [s.cpu().eval() for s in module.saes]
        dead = [t.dead_fraction() for t in module.trackers]
        ev = evaluate_saes(lm, out_saes, cfg, data.held_out, scope, progress)
        peak = peak_memory_bytes(lm.device)
        reader_pos = stream.blocks.reader.tell() if stream.blocks is not None else {}
        run_facts = {
            "run_id": run_id, "train_tokens": prog_cb.tokens, "requested_tokens": cfg.total_tokens,
            "held_out_tokens": ev.held[0].n_tokens if ev.held else 0, "held_out_contexts": int(data.held_out.shape[0]),
            "passes": _passes(stream), "epochs": cfg.epochs, "steps": module.step, "world_size": world_size,
            "peak_memory_bytes": peak, "train_contexts": reader_pos.get("contexts"),
            "contexts_digest": reader_pos.get("digest"), "notes": list(cfg.extra.get("notes", [])),
        }
        progress.phase("saving", len(out_saes), "SAEs")
        per_member = []
        for i, (m, sae, held, splice, dead_f) in enumerate(zip(members, out_saes, ev.held, ev.splice, dead)):
            mm = member_metrics(m, held, splice, dead_f)
            sae.cfg.extra = {**{k: v for k, v in mm.items() if k != "density_histogram"}, "run_id": run_id,
                             "train_tokens": prog_cb.tokens, "passes": run_facts["passes"]}
            sid = deps.saes.register(sae, name=m.label if cfg.sweep else None, source="trained", run_id=run_id,
                                     metrics={**mm, **{k: run_facts[k] for k in ("train_tokens", "held_out_tokens",
                                                                                  "passes", "steps", "world_size")}})
            per_member.append({**mm, "sae_id": sid})
            progress.advance(i + 1)
        summary = {**run_facts, "sae_ids": [p["sae_id"] for p in per_member], "members": per_member}
        runs.update(run_id, status="done", metrics=summary, sae_id=per_member[0]["sae_id"], step=module.step,
                    tokens_seen=prog_cb.tokens)
        publish(TrainingDone(run_id=run_id, sae_ids=summary["sae_ids"], metrics=brief(per_member),
                             train_tokens=prog_cb.tokens, held_out_tokens=run_facts["held_out_tokens"],
                             passes=run_facts["passes"]))
        return RunOutcome("done", summary["sae_ids"], summary)
    finally:
        progress.stop()
        del trainer, module, stream
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def follow_run(settings: Any, run_id: str) -> RunOutcome:
    """Rank > 0 of a multi-process CLI run: train alongside rank 0 and write nothing.

    Reads the run's config and rank 0's hand-off (or resume) checkpoint, loads the model (on
    ``cuda:LOCAL_RANK`` when the run trains on CUDA), opens the same corpus at the checkpoint's read position
    and takes part in every step; evaluation, rows, checkpoints, SAEs and events stay with rank 0.
    """
    from ..activations.corpus import default_corpus_path
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
        row = None if cfg.corpus in (None, "", "default") else CorpusRepo(db).get(cfg.corpus)
    finally:
        db.close()
    spec = SourceSpec(location=str(default_corpus_path()), kind="path") if row is None else (
        SourceSpec.from_dict(row.spec) if row.spec else SourceSpec(location=row.path, kind="path"))
    ckpt_dir = settings.runs_dir / run_id / "checkpoint"
    if not has_checkpoint(ckpt_dir):
        raise ValueError(f"DDP follower: rank 0 left no hand-off checkpoint in {ckpt_dir}")
    dev = pick_device(settings.device)
    device = f"cuda:{local_rank()}" if dev.type == "cuda" else str(dev)
    lm = load_model(settings.model, device=device, dtype=settings.dtype, cache_dir=settings.model_cache_dir,
                    quantization=settings.quantization)
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    scope = threading.RLock()
    data = prepare(cfg, lm, spec, Encoder(lm, cfg.hook_names, cfg.model_batch_size, scope))
    ck = load_checkpoint(ckpt_dir)
    module = SAETrainingModule(ck.saes, cfg, start_step=ck.step, optimizer_state=ck.optimizer_state,
                               trackers=ck.trackers)
    remaining_steps = max(0, cfg.total_steps - ck.step)
    if remaining_steps:
        stream = ActivationStream(cfg, data.reader, state=_resume_state(ck.stream))
        trainer = _trainer(cfg, remaining_steps, [CancelCallback(threading.Event())], settings.runs_dir / run_id)
        trainer.fit(module, datamodule=ActivationDataModule(stream))
    return RunOutcome("done", [], {})


def suggest_lr(cfg: TrainingConfig, module: SAETrainingModule, data: RunData, start: StreamState, root: Path,
               device: torch.device | None = None) -> float:
    """Lightning's LR finder over a short separate stream (the run's first batches); returns the suggestion
    (or the first member's rate), used by every member."""
    from lightning.pytorch.tuner import Tuner

    n = min(50, cfg.total_steps)
    short = dataclasses.replace(cfg, total_tokens=n * cfg.batch_size)
    stream = ActivationStream(short, data.reader, state=start)
    root.mkdir(parents=True, exist_ok=True)
    trainer = _trainer(cfg, n, [], root, device)
    found = Tuner(trainer).lr_find(module, datamodule=ActivationDataModule(stream), num_training=n,
                                   min_lr=1e-5, max_lr=1e-1, update_attr=False)
    lr = found.suggestion() if found is not None else None
    return float(lr) if lr else module.members[0].lr
