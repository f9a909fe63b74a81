"""Resumable checkpoints: SAE weights, dead-latent trackers, Adam state, step/tokens and the data stream's
read position (``activations.stream.StreamState`` of the last *trained* batch), as safetensors plus JSON
in one folder written atomically (nothing pickled)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file

from ..sae.config import SAEConfig
from ..sae.model import SparseAutoencoder
from ..store.artifacts import atomic_dir
from .objectives import DeadTracker

STATE_NAME = "state.json"
WEIGHTS_NAME = "weights.safetensors"
OPTIM_NAME = "optimizer.safetensors"


class Checkpoint(NamedTuple):
    saes: list[SparseAutoencoder]
    trackers: list[DeadTracker]
    optimizer_state: dict[int, dict[str, torch.Tensor]]
    step: int
    tokens: int
    stream: dict[str, Any] | None
    """``StreamState.to_dict()`` after the last trained batch (None in checkpoints older than it)."""


def save_checkpoint(folder: Path, saes: list[SparseAutoencoder], trackers: list[DeadTracker],
                    optimizer: torch.optim.Optimizer | None, step: int, tokens: int,
                    stream: dict[str, Any] | None = None) -> Path:
    weights: dict[str, torch.Tensor] = {}
    for i, (sae, tr) in enumerate(zip(saes, trackers)):
        for name, t in [*sae.state_dict().items(), *tr.state_dict().items()]:
            weights[f"{i}.{name}"] = t.detach().cpu().contiguous()
    optim: dict[str, torch.Tensor] = {}
    if optimizer is not None:
        for pid, st in optimizer.state_dict()["state"].items():
            for key, t in st.items():
                optim[f"{pid}.{key}"] = torch.as_tensor(t).detach().cpu().contiguous()
    state: dict[str, Any] = {"step": step, "tokens": tokens, "sae_cfgs": [s.cfg.to_dict() for s in saes],
                             "dead_after_tokens": trackers[0].dead_after_tokens if trackers else 0,
                             "stream": stream}
    with atomic_dir(folder) as tmp:
        save_file(weights, str(tmp / WEIGHTS_NAME))
        save_file(optim or {"_empty": torch.zeros(0)}, str(tmp / OPTIM_NAME))
        (tmp / STATE_NAME).write_text(json.dumps(state))
    return folder


def load_checkpoint(folder: Path, device: str | torch.device = "cpu") -> Checkpoint:
    folder = Path(folder)
    state = json.loads((folder / STATE_NAME).read_text())
    w = load_file(str(folder / WEIGHTS_NAME))
    saes, trackers = [], []
    for i, cfg_d in enumerate(state["sae_cfgs"]):
        sae = SparseAutoencoder(SAEConfig.from_dict(cfg_d))
        sae.load_state_dict({k.split(".", 1)[1]: v for k, v in w.items()
                             if k.startswith(f"{i}.") and k.split(".", 1)[1] in sae.state_dict()})
        tr = DeadTracker(sae.cfg.d_sae, int(state["dead_after_tokens"]))
        tr.load_state_dict({k.split(".", 1)[1]: v for k, v in w.items()
                            if k.startswith(f"{i}.") and k.split(".", 1)[1] in tr.state_dict()})
        saes.append(sae.to(device))
        trackers.append(tr.to(device))
    optim: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in load_file(str(folder / OPTIM_NAME)).items():
        if key == "_empty":
            continue
        pid, name = key.split(".", 1)
        optim.setdefault(int(pid), {})[name] = t.to(device) if name != "step" else t
    return Checkpoint(saes, trackers, optim, int(state["step"]), int(state["tokens"]), state.get("stream"))


def has_checkpoint(folder: Path) -> bool:
    return (Path(folder) / STATE_NAME).is_file()
