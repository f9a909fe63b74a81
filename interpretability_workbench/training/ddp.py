"""Multi-process (DDP) training is a CLI feature: ``microscope train --devices N --strategy ddp``.

Lightning's subprocess launcher re-executes the command line once per extra local process. Rank 0 (the
process the user started) owns the run: it writes the run row, metrics, checkpoints, SAEs and events. Before
``trainer.fit`` it writes a hand-off checkpoint and exports ``IWB_DDP_RUN_ID``; the re-executed children see
that variable with a non-zero ``LOCAL_RANK`` and run as followers (``runner.follow_run``): they load the
same model, contexts and checkpoint, take part in every optimiser step, and write nothing.

``batch_size`` stays the global batch (activations per optimiser step): each of the ``world_size``
processes takes ``batch_size / world_size`` of it per step, so steps, the LR schedule and tokens_seen do not
depend on the number of processes.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

from .config import TrainingConfig

FOLLOW_ENV = "IWB_DDP_RUN_ID"
"""Exported by rank 0 before fit; children launched by Lightning inherit it."""
RANK_ENVS = ("LOCAL_RANK", "NODE_RANK", "RANK")
MULTI_STRATEGIES = ("ddp", "fsdp", "deepspeed")
CLI_HINT = "microscope train --devices N --strategy ddp"


def _device_count(cfg: TrainingConfig) -> int | None:
    """Processes per node Lightning would start for ``cfg.devices`` (None: cannot tell up front)."""
    d = cfg.devices
    if isinstance(d, str):
        s = d.strip()
        if s.lstrip("-").isdigit():
            d = int(s)
        elif s == "auto":
            gpu = cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
            return torch.cuda.device_count() if gpu else 1
        else:  # "0,1" / "[0, 1]": a list of device indices
            return len([x for x in s.strip("[]").split(",") if x.strip()])
    if isinstance(d, int):
        if d == -1:
            gpu = cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
            return torch.cuda.device_count() if gpu else None
        return d
    return None


def world_size(cfg: TrainingConfig) -> int | None:
    """Total training processes (devices x nodes), or None when it depends on the machine."""
    n = _device_count(cfg)
    return None if n is None else n * max(1, cfg.num_nodes)


def is_multiprocess(cfg: TrainingConfig) -> bool:
    """True when Lightning would launch (or join) several processes: those runs belong to the CLI."""
    n = world_size(cfg)
    return n is None or n > 1 or any(s in str(cfg.strategy).lower() for s in MULTI_STRATEGIES)


def check_multiprocess(cfg: TrainingConfig) -> None:
    """Raise ValueError for multi-process settings the CLI cannot run correctly."""
    n = world_size(cfg)
    if cfg.lr_finder:
        raise ValueError("the LR finder runs on one process: find the rate with --devices 1 --lr-finder, "
                         "then train with --lr <rate> on several devices")
    if n is not None and cfg.batch_size % n:
        raise ValueError(f"batch_size ({cfg.batch_size}) is the global batch and must split evenly across "
                         f"{n} processes; pick a multiple of {n}")


def follower_run_id() -> str | None:
    """The run this process follows, when Lightning launched it as a rank > 0 child of a CLI run."""
    run_id = os.environ.get(FOLLOW_ENV)
    if not run_id:
        return None
    ranks = [os.environ.get(k, "0") for k in RANK_ENVS]
    return run_id if any(r.strip() not in ("", "0") for r in ranks) else None


def local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


@contextmanager
def leader_env(run_id: str) -> Iterator[None]:
    """Export ``IWB_DDP_RUN_ID`` while rank 0 fits (children inherit it at launch); restore afterwards and
    leave no process group behind."""
    old = os.environ.get(FOLLOW_ENV)
    os.environ[FOLLOW_ENV] = run_id
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(FOLLOW_ENV, None)
        else:
            os.environ[FOLLOW_ENV] = old
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
