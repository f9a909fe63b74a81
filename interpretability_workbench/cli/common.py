"""Helpers shared by subcommands."""
from __future__ import annotations

import argparse

from ..settings import Settings
from ..state import WorkbenchState


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="'default' (embedded SmolLM2-135M-Instruct), hub id, folder or .gguf (env IWB_MODEL)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda (env IWB_DEVICE)")
    p.add_argument("--dtype", default=None, help="auto, float32, bfloat16 (env IWB_DTYPE)")


def make_state(args: argparse.Namespace, *, need_model: bool = True,
               settings_overrides: dict | None = None) -> WorkbenchState:
    overrides = {k: v for k in ("model", "device", "dtype") if (v := getattr(args, k, None)) is not None}
    settings = Settings(**overrides, **(settings_overrides or {}))
    if settings.model == "none":
        need_model = False
    state = WorkbenchState(settings)
    if need_model:
        state.load_model(settings.model)
    return state
