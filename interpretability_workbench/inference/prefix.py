"""Prefix reuse for the live path: where a patch first changes the residual stream, and the original run's
keys and values cropped to the positions before it.

Why running only the tail is exact: in a causal model position t reads only positions ≤ t. Every patch is
a wrapper module (``patches/inject.py``) that adds something per position. If, on the original run's
activations, no wrapper in use adds anything at positions < p, then by induction over positions and layers
the patched run equals the original run at every position < p, so the original run's keys and values of
those positions are the patched run's too. Running positions ≥ p on a ``DynamicCache`` cropped to p (and,
as before, only the blocks at and above the lowest patched one) therefore gives the full patched forward's
last-position logits, up to float32 rounding.

Where each entry first writes something, recorded once per prompt on the original run (strength-free, so a
slider move needs no new scan):

* weight deltas (ablate, scale, steer, adapter; ``DeltaEntry``): the unit-strength write
  ``x Aᵀ Bᵀ + bias`` of the wrapped module. Position t counts as changed when
  ``|scaling| · max|write_t| > RTOL · max|base(x)_t|``: a write below float32 rounding of what the module
  writes anyway is not a change. A steer (bias only) changes every position; ablate / scale change where
  the module's output has a component along the features' span (in trained models: nearly everywhere).
* clamp (``ClampEntry``): positions where a clamped feature's activation differs from the clamp value
  (``f ≠ v``, exactly). Clamping at 0 changes only where the feature fires (sparse SAEs give exact zeros
  elsewhere); any other value changes every position where the feature is not already at it.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..patches.inject import ClampBlock, ClampEntry, DeltaEntry, DeltaLayer, find_wrapper

RTOL = 1e-6
"""A weight delta's write at a position counts as a change when larger than this fraction of the wrapped
module's own output there (float32 has 2⁻²³ ≈ 1.2e-7 relative precision)."""


@dataclass
class DeltaScan:
    entry: DeltaEntry
    """The entry scanned (a re-applied patch has a new one, so the record is stale)."""
    write_max: Tensor
    """``[pos]`` max |x Aᵀ Bᵀ + bias| per position at unit strength, on the original run."""
    out_max: Tensor
    """``[pos]`` max |base(x)| per position: what the wrapped module writes anyway."""

    def changed(self) -> Tensor:
        """``[pos]`` bool: positions where the entry, switched on at its current strength, changes the output."""
        e = self.entry
        if e.scaling == 0.0:
            return torch.zeros_like(self.write_max, dtype=torch.bool)
        return abs(e.scaling) * self.write_max > RTOL * self.out_max


@dataclass
class ClampScan:
    entry: ClampEntry
    """The entry scanned."""
    acts: Tensor
    """``[pos n]`` activations of the clamped features on the original block output."""

    def changed(self) -> Tensor:
        """``[pos]`` bool: positions where the entry, switched on at its current value, changes the output."""
        e = self.entry
        live = e.dirs.abs().amax(-1) > 0  # [n] a zero decoder row writes nothing
        return ((e.value - self.acts) != 0)[:, live].any(-1)


Scan = dict[tuple[str, str], DeltaScan | ClampScan]
"""(module path, patch id) -> where that patch's entry on that module writes, on the original run."""


@torch.no_grad()
def _scan_delta(path: str, scan: Scan, module: DeltaLayer, args: tuple, out: Any) -> None:
    x = args[0]  # [1 pos in] (ids [1 pos] for an embedding)
    o = out[0] if isinstance(out, (tuple, list)) else out  # [1 pos out]
    out_max = o[0].detach().abs().amax(-1).float()
    for pid, e in module.entries.items():
        d = e.delta
        write: Tensor | None = None
        if e.low_rank:
            h = F.embedding(x, e.At) if d.kind == "embedding" else x.to(d.A.dtype) @ d.A.T  # [1 pos r]
            write = h @ d.B.T  # [1 pos out]
        if d.bias is not None:
            write = d.bias.expand_as(o) if write is None else write + d.bias
        wmax = torch.zeros_like(out_max) if write is None else write[0].abs().amax(-1).float()
        scan[(path, pid)] = DeltaScan(e, wmax, out_max)


@torch.no_grad()
def _scan_clamp(path: str, scan: Scan, module: ClampBlock, _args: tuple, out: Any) -> None:
    h = out[0] if isinstance(out, (tuple, list)) else out  # [1 pos d_model], every entry off
    for pid, e in module.entries.items():
        scan[(path, pid)] = ClampScan(e, e.sae.encode(h[0].float())[:, e.features])  # [pos n]


@contextmanager
def scanning(model: nn.Module, scan: Scan) -> Iterator[None]:
    """Record, during one original forward of one prompt (every patch off), where each entry of every
    wrapper on the model would write (see the module docstring)."""
    handles = []
    try:
        for path, module in model.named_modules():
            if isinstance(module, DeltaLayer):
                handles.append(module.register_forward_hook(partial(_scan_delta, path, scan)))
            elif isinstance(module, ClampBlock):
                handles.append(module.register_forward_hook(partial(_scan_clamp, path, scan)))
        yield
    finally:
        for h in handles:
            h.remove()


def first_change(model: nn.Module, targets: dict[str, list[str]], scan: Scan, n_pos: int) -> int | None:
    """First position any of the patches changes (``n_pos``: none), from ``targets`` (patch id -> module
    paths it wraps) and the scan of the original run; None when the scan lacks an entry or holds an old
    one (the original run must be scanned again)."""
    first = n_pos
    for pid, paths in targets.items():
        for path in paths:
            w = find_wrapper(model, path)
            e = None if w is None else w.entries.get(pid)
            if e is None:
                continue
            rec = scan.get((path, pid))
            if rec is None or rec.entry is not e:
                return None
            hit = rec.changed().nonzero()
            if hit.numel():
                first = min(first, int(hit[0, 0]))
    return first


def prefix_reusable(cache: Any) -> bool:
    """Whether the cache can be cropped to a prefix (every layer keeps all positions: no sliding window)."""
    sliding = getattr(cache, "is_sliding", None)
    return cache is not None and not any(sliding or [])


def cropped(cache: Any, n_prefix: int) -> Any:
    """A new ``DynamicCache`` holding the first ``n_prefix`` positions of ``cache`` (which stays as it is)."""
    from transformers import DynamicCache

    return DynamicCache([(k[..., :n_prefix, :], v[..., :n_prefix, :]) for k, v, *_ in cache])
