"""The corpus-independent part of a feature analysis (``logits.py``: top ± logit tokens, the logit
histogram and decoder neighbours of every feature), computed once per (SAE weights, model weights) and kept
beside the SAE as ``weight_views.safetensors``.

The file is keyed by a digest (sha256) of exactly what the computation reads: the SAE decoder and its input
scale, the final norm's effective gain and whether it centres, the unembedding (its dtype, shape and bytes)
and the sizes asked for. Another model, a retrained or edited SAE, or other ``n_logits`` / ``n_neighbours``
give another digest, so a stale file is never read: it is recomputed and overwritten. The file is a plain
safetensors file (nothing unpickled); it is written atomically (temporary name, then ``os.replace``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import weakref
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..model.hook_map import arch_for, get_module
from ..sae.model import SparseAutoencoder
from .logits import (N_LOGIT_BINS, LogitEffects, Neighbours, decoder_neighbours, direction_to_residual_readout,
                     logit_effects)

log = logging.getLogger(__name__)

WEIGHT_VIEWS_NAME = "weight_views.safetensors"
FORMAT = "1"
"""Bumped whenever what the file holds, or how it is computed, changes (old files are then recomputed)."""

_LOGIT_KEYS = LogitEffects._fields
_NEIGHBOUR_KEYS = tuple("nb_" + f for f in Neighbours._fields)


class WeightViews(NamedTuple):
    logits: LogitEffects
    neighbours: Neighbours
    cached: bool
    """True when read from the file beside the SAE, False when computed now."""


def _tensor_bytes(t: Tensor) -> memoryview:
    """The raw bytes of ``t`` (any dtype, any device) in row-major order."""
    return memoryview(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy())


_memo: dict[int, tuple[weakref.ref, int, str]] = {}
"""id(parameter) -> (weak reference to it, its in-place version counter, sha256) for large model weights."""


def _tensor_digest(t: Tensor, owner: Tensor | None = None) -> str:
    """sha256 of ``t``'s dtype, shape and bytes. With ``owner`` (the live parameter ``t`` was detached from,
    sharing its ``_version`` counter of in-place writes) it is remembered while that same parameter object is
    unmodified, so the unembedding is hashed once per loaded model."""
    hit = _memo.get(id(owner)) if owner is not None else None
    if hit is not None and hit[0]() is owner and hit[1] == owner._version:
        return hit[2]
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(_tensor_bytes(t))
    out = h.hexdigest()
    if owner is not None:
        for k in [k for k, v in _memo.items() if v[0]() is None]:
            del _memo[k]
        _memo[id(owner)] = (weakref.ref(owner), owner._version, out)
    return out


def weights_digest(model: nn.Module, sae: SparseAutoencoder, n_logits: int, n_neighbours: int) -> str:
    """Digest of everything ``compute_weight_views`` reads (see the module docstring)."""
    g, centers, w_u = direction_to_residual_readout(model)
    param = getattr(get_module(model, arch_for(model).unembed), "weight", None)
    owner = param if isinstance(param, Tensor) and param.device.type != "meta" else None  # offloaded: hash each time
    h = hashlib.sha256(f"iwb-weight-views/{FORMAT}/{n_logits}/{n_neighbours}/{N_LOGIT_BINS}/{centers}/"
                       f"{float(sae.scale)!r}/".encode())
    h.update(_tensor_digest(w_u, owner).encode())
    h.update(_tensor_bytes(g.float()))
    h.update(_tensor_bytes(sae.W_dec.detach().float()))
    return h.hexdigest()


def compute_weight_views(model: nn.Module, sae: SparseAutoencoder, n_logits: int, n_neighbours: int) -> WeightViews:
    """Logit effects and decoder neighbours of every feature, computed now (float32, on the SAE's device)."""
    return WeightViews(logit_effects(model, sae, n_logits), decoder_neighbours(sae, n_neighbours), False)


def save_weight_views(path: str | Path, views: WeightViews, digest: str) -> None:
    """Write ``views`` to ``path`` atomically, keyed by ``digest``."""
    path = Path(path)
    tensors = {k: t.contiguous().cpu() for k, t in zip(_LOGIT_KEYS, views.logits)}
    tensors.update({k: t.contiguous().cpu() for k, t in zip(_NEIGHBOUR_KEYS, views.neighbours)})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "digest": digest})
    os.replace(tmp, path)


def load_weight_views(path: str | Path, digest: str, device: torch.device | str = "cpu") -> WeightViews | None:
    """The views stored at ``path`` when their digest is ``digest`` (None: missing, stale or unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT or meta.get("digest") != digest:
            return None
        t = load_file(str(path), device=str(device))
        logits = LogitEffects(*(t[k] for k in _LOGIT_KEYS))
        neigh = Neighbours(*(t[k] for k in _NEIGHBOUR_KEYS))
    except (SafetensorError, OSError, KeyError) as e:
        log.warning("ignoring unreadable %s (%s); recomputing it", path, e)
        return None
    return WeightViews(logits, neigh, True)


def weight_views(model: nn.Module, sae: SparseAutoencoder, n_logits: int = 10, n_neighbours: int = 10,
                 cache: str | Path | None = None) -> WeightViews:
    """The views of every feature: read from ``cache`` when it holds them for these exact weights, otherwise
    computed and (when ``cache`` is given and its folder exists) written there."""
    if cache is None:
        return compute_weight_views(model, sae, n_logits, n_neighbours)
    digest = weights_digest(model, sae, n_logits, n_neighbours)
    hit = load_weight_views(cache, digest, sae.W_dec.device)
    if hit is not None:
        return hit
    views = compute_weight_views(model, sae, n_logits, n_neighbours)
    if Path(cache).parent.is_dir():
        try:
            save_weight_views(cache, views, digest)
        except OSError as e:  # a read-only SAE folder: the analysis still completes
            log.warning("could not cache the weight views at %s: %s", cache, e)
    return views
