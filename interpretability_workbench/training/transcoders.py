"""Transcoder training: a LightningModule over one transcoder per layer, all fed from one forward per
batch (``transcoder_data.MLPStream``), and the run from start to finish (``train_transcoders``): contexts,
initialisation from the data, fit with progress/cancel callbacks, held-out FVU and L0 per layer, CE loss
recovered with every trained MLP replaced at once, registration of the set, run row and events.

The transcoders are plain ``nn.Module``s (``circuits.transcoder``); the loss of one layer is
``transcoder_step``. Runs are not checkpointed: a cancelled run registers nothing.
"""
from __future__ import annotations

import gc
import math
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..activations.corpus import load_texts, make_contexts
from ..circuits.registry import TranscoderRegistry
from ..circuits.replacement import replacement_ce
from ..circuits.transcoder import (Transcoder, TranscoderConfig, TranscoderStep, after_optimizer_step,
                                   before_optimizer_step, init_b_dec, mlp_fvu, transcoder_step)
from ..events import Publish, TrainingCancelled, TrainingDone, TrainingProgress
from ..model.loader import LoadedModel
from ..store.runs import RunRepo
from .objectives import DeadTracker
from .transcoder_config import TranscoderTrainingConfig
from .transcoder_data import MLPBatch, MLPStream, sample_mlp_io

INIT_TOKENS = 4096


@dataclass
class TranscoderRunDeps:
    runs: RunRepo
    """Run rows and metric history."""
    transcoders: TranscoderRegistry
    """Where the trained set is registered."""
    publish: Publish
    """Progress, done and cancelled events."""
    scope: AbstractContextManager[Any]
    """Held around every model forward (the model lock, with every patch switched off)."""
    corpus_path: Path | None
    """The run's corpus file (None: the built-in corpus)."""


class Scales(NamedTuple):
    x: Tensor
    """Per layer, the RMS of the MLP input per element ``[n_layers]``."""
    y: Tensor
    """Per layer, the RMS of the MLP output per element ``[n_layers]``."""


def data_scales(sample: MLPBatch) -> Scales:
    """Training runs on inputs and outputs divided by their RMS, so one learning rate suits every layer and
    model (Adam's steps are absolute); ``fold_scales`` puts the scales into the weights afterwards."""
    rms = lambda a: a.pow(2).mean(dim=(0, 2)).sqrt().clamp_min(1e-8)  # noqa: E731
    return Scales(rms(sample.x), rms(sample.y))


@torch.no_grad()
def fold_scales(tc: Transcoder, sx: float, sy: float) -> None:
    """A transcoder trained on ``x / sx -> y / sy`` as one on ``x -> y``, exactly: the pre-activations are
    unchanged (``W_enc / sx``), the output is multiplied by ``sy`` (``W_dec``, ``b_dec``; ``W_skip * sy / sx``)."""
    tc.W_enc.div_(sx)
    tc.W_dec.mul_(sy)
    tc.b_dec.mul_(sy)
    if tc.W_skip is not None:
        tc.W_skip.mul_(sy / sx)


class TranscoderModule(pl.LightningModule):
    def __init__(self, transcoders: list[Transcoder], cfg: TranscoderTrainingConfig, scales: Scales) -> None:
        super().__init__()
        self.cfg = cfg
        self.tcs = nn.ModuleList(transcoders)
        self.trackers = nn.ModuleList([DeadTracker(t.cfg.d_tc, cfg.dead_after_tokens) for t in transcoders])
        self.register_buffer("sx", scales.x.clone())
        self.register_buffer("sy", scales.y.clone())
        self.last: list[TranscoderStep] = []
        """Per-layer results of the latest step (read by the progress callback)."""

    def training_step(self, batch: MLPBatch, batch_idx: int) -> Tensor:
        x, y = batch
        k_aux = self.cfg.aux_k if self.cfg.aux_k is not None else x.shape[-1] // 2
        results = []
        for i, (tc, tracker) in enumerate(zip(self.tcs, self.trackers)):
            dead = tracker.dead_mask() if tc.cfg.architecture == "topk" else None
            r = transcoder_step(tc, x[:, i] / self.sx[i], y[:, i] / self.sy[i], dead=dead, k_aux=k_aux,
                                aux_coefficient=self.cfg.aux_k_coefficient)
            tracker.update(r.fired, x.shape[0])
            results.append(r)
        self.last = results
        return torch.stack([r.loss for r in results]).sum()

    @torch.no_grad()
    def folded(self) -> list[Transcoder]:
        """The trained transcoders on the CPU, scales folded in (they read and predict raw activations)."""
        out = []
        for i, tc in enumerate(self.tcs):
            tc = tc.cpu().eval()
            fold_scales(tc, float(self.sx[i]), float(self.sy[i]))
            out.append(tc)
        return out

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.tcs.parameters(), lr=self.cfg.learning_rate, betas=(0.9, 0.999))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.cfg.lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        for tc in self.tcs:
            before_optimizer_step(tc)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        for tc in self.tcs:
            after_optimizer_step(tc)

    def current_lr(self) -> float:
        opts = self.trainer.optimizers if self._trainer is not None else []
        return float(opts[0].param_groups[0]["lr"]) if opts else self.cfg.learning_rate


class _Progress(pl.Callback):
    """After each step: a ``training_progress`` event (at most every ``interval_s``; the last step always)
    and a row of metric history (every second)."""

    def __init__(self, publish: Publish, record: Callable[[int, int, dict], None], run_id: str,
                 cfg: TranscoderTrainingConfig, stream: MLPStream) -> None:
        self.publish, self.record, self.run_id, self.cfg, self.stream = publish, record, run_id, cfg, stream
        self.tokens = 0
        self._t0 = time.perf_counter()
        self._last_pub = self._last_rec = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def snapshot(self, m: TranscoderModule, phase: str) -> dict[str, Any]:
        n = max(1, len(m.last))
        tps = self.tokens / max(1e-9, time.perf_counter() - self._t0)
        per = [{"layer": tc.layer, "fvu": r.fvu, "mse": r.mse, "l0": r.l0, "aux": r.aux,
                "dead_fraction": t.dead_fraction()} for tc, r, t in zip(m.tcs, m.last, m.trackers)]
        return {
            "step": int(m.global_step), "tokens": self.tokens, "tokens_read": self.stream.tokens_read,
            "mse": sum(p["mse"] for p in per) / n, "fvu": sum(p["fvu"] for p in per) / n,
            "l0": sum(p["l0"] for p in per) / n, "dead_fraction": sum(p["dead_fraction"] for p in per) / n,
            "tokens_per_s": tps, "eta_s": max(0, self.cfg.total_tokens - self.tokens) / tps if tps > 0 else None,
            "phase": phase, "per_layer": per, "lr": m.current_lr(),
        }

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.tokens += int(batch[0].shape[0])
        snap = self.snapshot(pl_module, "training")
        now = time.perf_counter()
        last = trainer.global_step >= trainer.max_steps
        if last or now - self._last_pub >= self.cfg.progress_interval_s:
            self._last_pub = now
            self.publish(progress_event(self.run_id, self.cfg, snap))
        if last or now - self._last_rec >= 1.0:
            self._last_rec = now
            self.record(snap["step"], self.tokens, snap)


class _Cancel(pl.Callback):
    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.cancel.is_set():
            trainer.should_stop = True


def progress_event(run_id: str, cfg: TranscoderTrainingConfig, snap: dict[str, Any]) -> TrainingProgress:
    keys = ("step", "tokens", "tokens_read", "mse", "fvu", "l0", "dead_fraction", "tokens_per_s", "eta_s", "phase")
    return TrainingProgress(run_id=run_id, total_tokens=cfg.total_tokens, **{k: snap[k] for k in keys if k in snap})


class RunContexts(NamedTuple):
    train: Tensor
    """``[n_ctx ctx]`` token ids to train on."""
    held_out: Tensor
    """``[n_eval ctx]`` held-out token ids (the end of the corpus)."""


def run_contexts(lm: LoadedModel, cfg: TranscoderTrainingConfig, corpus_path: Path | None) -> RunContexts:
    per_ctx = cfg.context_size - 1
    n_train = math.ceil(cfg.total_tokens / per_ctx)
    ctx = make_contexts(lm.tokenizer, load_texts(corpus_path), cfg.context_size,
                        max_contexts=n_train + cfg.eval_contexts)
    k = min(cfg.eval_contexts, max(1, ctx.shape[0] // 10))
    if ctx.shape[0] - k < 1:
        raise ValueError("the corpus is too small to hold out contexts; upload a larger one or shorten contexts")
    return RunContexts(ctx[: ctx.shape[0] - k], ctx[ctx.shape[0] - k:])


@torch.no_grad()
def new_transcoders(cfg: TranscoderTrainingConfig, lm: LoadedModel, sample: MLPBatch, scales: Scales) -> list[Transcoder]:
    """One transcoder per layer (for the scaled data): b_dec at the mean MLP output, the encoder scaled so the
    first outputs have the data's size, JumpReLU thresholds at the pre-activation quantile where about ``k``
    latents fire per token."""
    out = []
    for i, layer in enumerate(cfg.layers):
        tcfg = TranscoderConfig(
            d_in=lm.d_model, d_tc=cfg.d_tc, architecture=cfg.architecture,
            k=cfg.k if cfg.architecture == "topk" else None, skip=cfg.skip, layer=layer, model_id=lm.model_id,
            model_revision=lm.revision, model_class_name=lm.architecture, context_size=cfg.context_size,
            dataset_path=cfg.corpus, l0_coefficient=cfg.l0_coefficient, jumprelu_bandwidth=cfg.jumprelu_bandwidth)
        tc = Transcoder(tcfg)
        tc.reset_parameters(seed=cfg.seed + i)
        x, y = sample.x[:, i] / scales.x[i], sample.y[:, i] / scales.y[i]
        init_b_dec(tc, y)
        # decoder rows are unit vectors, so the encoder sets the output's scale: start it at the data's
        f = tc.activation(tc.pre_activations(x)) if cfg.architecture == "topk" else tc.pre_activations(x).relu()
        got = (f @ tc.W_dec).norm(dim=-1).mean()
        want = (y - y.mean(0)).norm(dim=-1).mean()
        tc.W_enc.mul_(float(want / got.clamp_min(1e-12)) if float(got) > 0 else 1.0)
        if cfg.architecture == "jumprelu":
            pre = tc.pre_activations(x)
            q = 1.0 - min(1.0, cfg.k / cfg.d_tc)
            tc.threshold.copy_(torch.quantile(pre[:2048], q, dim=0).clamp_min(0.0))
        out.append(tc)
    return out


def _trainer(cfg: TranscoderTrainingConfig, callbacks: list[pl.Callback], device: torch.device) -> pl.Trainer:
    """One process on the model's device (the activations come from the model there)."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    devices = [device.index or 0] if device.type == "cuda" else 1
    return pl.Trainer(max_steps=cfg.total_steps, max_epochs=-1, accelerator=accelerator, devices=devices, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks)


@torch.no_grad()
def evaluate_transcoders(lm: LoadedModel, tcs: list[Transcoder], held_out: Tensor, scope: AbstractContextManager[Any],
                         model_batch_size: int = 8) -> dict[str, Any]:
    """Held-out FVU and L0 per layer, and CE loss recovered with every trained MLP replaced at once."""
    layers = [t.layer for t in tcs]
    data = sample_mlp_io(lm, held_out, layers, held_out.numel(), model_batch_size=model_batch_size, scope=scope)
    per = []
    for i, tc in enumerate(tcs):
        tc.to(lm.device)
        x, y = data.x[:, i].to(lm.device), data.y[:, i].to(lm.device)
        l0 = float((tc.encode(x) > 0).sum(-1).float().mean())
        per.append({"layer": tc.layer, "hook_name": tc.cfg.input_hook, "held_out_fvu": mlp_fvu(tc, x, y), "l0": l0})
    with scope:
        ce = replacement_ce(lm.model, {t.layer: t for t in tcs}, held_out.to(lm.device))
    for tc in tcs:
        tc.cpu()
    return {"per_layer": per, "held_out_fvu": sum(p["held_out_fvu"] for p in per) / len(per),
            "l0": sum(p["l0"] for p in per) / len(per), "ce_loss_clean": ce.clean, "ce_loss_replaced": ce.replaced,
            "ce_loss_ablated": ce.ablated, "ce_loss_recovered": ce.recovered,
            "held_out_tokens": int(data.x.shape[0])}


class TranscoderOutcome(NamedTuple):
    status: str
    """done | cancelled"""
    set_id: str | None
    sae_ids: list[str]
    """Registered transcoders (one SAE-registry entry per layer)."""
    metrics: dict[str, Any]


def train_transcoders(deps: TranscoderRunDeps, run_id: str, cfg: TranscoderTrainingConfig, lm: LoadedModel,
                      cancel: threading.Event) -> TranscoderOutcome:
    """Train run ``run_id`` in the calling (worker) thread; writes the run row, events and the set."""
    runs, publish, scope = deps.runs, deps.publish, deps.scope
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    contexts = run_contexts(lm, cfg, deps.corpus_path)
    runs.update(run_id, status="running", error=None)
    publish(progress_event(run_id, cfg, {"phase": "starting"}))
    sample = sample_mlp_io(lm, contexts.train, cfg.layers, INIT_TOKENS, model_batch_size=cfg.model_batch_size,
                           scope=scope)
    scales = data_scales(sample)
    module = TranscoderModule(new_transcoders(cfg, lm, sample, scales), cfg, scales)
    del sample
    stream = MLPStream(lm, contexts.train, cfg.layers, n_tokens=cfg.total_steps * cfg.batch_size,
                       batch_size=cfg.batch_size, model_batch_size=cfg.model_batch_size,
                       buffer_tokens=cfg.buffer_tokens, seed=cfg.seed, scope=scope)

    def record(step: int, tokens: int, snap: dict) -> None:
        runs.add_metric(run_id, step, tokens, snap)
        runs.update(run_id, step=step, tokens_seen=tokens)

    progress = _Progress(publish, record, run_id, cfg, stream)
    trainer = _trainer(cfg, [progress, _Cancel(cancel)], lm.device)
    try:
        trainer.fit(module, train_dataloaders=DataLoader(stream, batch_size=None, num_workers=0))
        if cancel.is_set():
            why = getattr(cancel, "reason", "cancelled")
            runs.update(run_id, status=why, step=int(module.global_step), tokens_seen=progress.tokens)
            publish(TrainingCancelled(run_id=run_id, step=int(module.global_step), tokens=progress.tokens, reason=why))
            return TranscoderOutcome(why, None, [], {})
        publish(progress_event(run_id, cfg, {**progress.snapshot(module, "evaluating"), "tokens": progress.tokens}))
        tcs = module.folded()
        metrics = evaluate_transcoders(lm, tcs, contexts.held_out, scope, cfg.model_batch_size)
        dead = [t.dead_fraction() for t in module.trackers]
        for p, d in zip(metrics["per_layer"], dead):
            p["dead_fraction"] = d
        metrics.update(train_tokens=progress.tokens, steps=int(module.global_step), passes=stream.passes,
                       dead_fraction=sum(dead) / len(dead), run_id=run_id)
        for tc, p in zip(tcs, metrics["per_layer"]):
            tc.cfg.extra = {"run_id": run_id, **p}
        name = cfg.name or f"{cfg.architecture}{'+skip' if cfg.skip else ''} d_tc={cfg.d_tc} layers {_span(cfg.layers)}"
        reg = deps.transcoders.register_set(tcs, name=name, source="trained", run_id=run_id, metrics=metrics)
        summary = {**metrics, "set_id": reg.set_id, "sae_ids": reg.sae_ids}
        runs.update(run_id, status="done", metrics=summary, sae_id=reg.sae_ids[0], step=int(module.global_step),
                    tokens_seen=progress.tokens)
        brief = [{"hook_name": p["hook_name"], "sae_id": sid, "held_out_fvu": p["held_out_fvu"], "l0": p["l0"],
                  "dead_fraction": p["dead_fraction"], "ce_loss_recovered": metrics["ce_loss_recovered"]}
                 for p, sid in zip(metrics["per_layer"], reg.sae_ids)]
        publish(TrainingDone(run_id=run_id, sae_ids=reg.sae_ids, metrics=brief))
        return TranscoderOutcome("done", reg.set_id, reg.sae_ids, summary)
    finally:
        del trainer, module, stream
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _span(layers: list[int]) -> str:
    if layers == list(range(layers[0], layers[-1] + 1)) and len(layers) > 2:
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))
