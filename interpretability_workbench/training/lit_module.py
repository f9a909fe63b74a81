"""SAETrainingModule: a LightningModule over the run's members — one SparseAutoencoder per (hook, sweep grid
point) — all fed from one batch of concatenated activations ``[batch n_hooks*d_in]``. Each member has its
own objective (its architecture, k or L1), learning rate (an Adam parameter group), dead-latent tracker and
gradient clipping (``grad_clip_norm``, on its own gradients only); the summed loss gives each member exactly
the gradients and the step it would get alone. Side effects (events,
checkpoints) live in callbacks."""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from ..sae.model import SparseAutoencoder
from .config import TrainingConfig
from .objectives import (DeadTracker, StepResult, batchtopk_step, clip_grads, remove_parallel_grads,
                         standard_step, topk_step)
from .sweep import MemberSpec


class SAETrainingModule(pl.LightningModule):
    def __init__(self, saes: list[SparseAutoencoder], cfg: TrainingConfig, *, start_step: int = 0,
                 optimizer_state: dict | None = None, trackers: list[DeadTracker] | None = None,
                 members: list[MemberSpec] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.members = members if members is not None else cfg.members
        if len(self.members) != len(saes):
            raise ValueError(f"{len(saes)} SAEs for {len(self.members)} members: the checkpoint does not match "
                             "the run's config; start a new run")
        self.saes = nn.ModuleList(saes)
        self.trackers = nn.ModuleList(trackers or [DeadTracker(s.cfg.d_sae, cfg.dead_after_tokens) for s in saes])
        self.start_step = start_step
        self._optimizer_state = optimizer_state
        self.lr_override: float | None = None
        """One learning rate for every member (the LR finder's suggestion), else each member's own."""
        self.last: list[StepResult] = []
        """Per-member results of the latest step (read by the progress callback)."""
        self.grad_norms: list[float] = []
        """Per-member gradient norms of the latest step before clipping (losses in SAELens's units; empty
        without ``grad_clip_norm``)."""
        self.automatic_optimization = True

    @property
    def step(self) -> int:
        """Absolute optimiser steps taken, counting steps before a resume."""
        return self.start_step + int(self.global_step)

    def _l1(self, coefficient: float) -> float:
        warm = max(1, int(self.cfg.total_steps * self.cfg.l1_warmup_fraction))
        return coefficient * min(1.0, (self.step + 1) / warm)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        d = self.saes[0].cfg.d_in
        results = []
        for m, sae, tracker in zip(self.members, self.saes, self.trackers):
            x = batch[:, m.hook_index * d: (m.hook_index + 1) * d]  # [batch d_in]
            if m.architecture == "topk":
                k_aux = self.cfg.aux_k if self.cfg.aux_k is not None else d // 2
                results.append(topk_step(sae, x, tracker, k_aux, self.cfg.aux_k_coefficient, self.cfg.aux_k_on))
            elif m.architecture == "batchtopk":
                results.append(batchtopk_step(sae, x, tracker))
            else:
                results.append(standard_step(sae, x, tracker, self._l1(m.l1_coefficient)))
        self.last = results
        return torch.stack([r.loss for r in results]).sum()

    def configure_optimizers(self) -> Any:
        groups = [{"params": list(sae.parameters()), "lr": self.lr_override or m.lr}
                  for m, sae in zip(self.members, self.saes)]
        opt = torch.optim.Adam(groups, betas=(0.9, 0.999))
        if self._optimizer_state is not None:
            sd = opt.state_dict()
            sd["state"] = self._optimizer_state
            opt.load_state_dict(sd)
            self._optimizer_state = None
        start, cfg = self.start_step, self.cfg
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: cfg.lr_factor(i + start))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        for sae in self.saes:
            remove_parallel_grads(sae)
        if self.cfg.grad_clip_norm is None or not self.last:
            return
        # DDP: the grads are already averaged across processes, so every process clips by the same factor
        self.grad_norms = [clip_grads(sae, self.cfg.grad_clip_norm) for sae in self.saes]

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        for sae in self.saes:  # decoder rows stay unit norm
            sae.normalize_decoder()

    def current_lrs(self) -> list[float]:
        """Each member's current learning rate (after warm-up / decay)."""
        opts = self.trainer.optimizers if self._trainer is not None else []
        if opts:
            return [float(g["lr"]) for g in opts[0].param_groups]
        return [self.lr_override or m.lr for m in self.members]
