"""Wrapper layers hot-swapped into the live model (PEFT-style: a module holding ``base_layer``).

* ``DeltaLayer`` wraps a residual writer (Linear, GPT-2 Conv1D, Embedding) and adds the low-rank deltas
  of every patch on it: ``out = base(x) + Σ scaling_p · (x A_pᵀ B_pᵀ + bias_p)``. The deltas are float32
  on the device the module executes on (its own GPU in a dispatched model, the execution device of an
  offloaded one); the sum is computed in float32 and added to the module's output upcast, then rounded
  to the output's dtype once — exactly what PEFT does with a float32 adapter on a bf16 model, so an
  exported adapter reproduces the live logits.
* ``ClampBlock`` wraps a decoder block and splices an SAE at its output with the error term kept:
  ``x' = x + Σ_i (v − f_i(x)) · W_dec[i]`` for the clamped features (applied at every position), computed
  in float32 on the SAE's device and added back on the block's device in its dtype.
* ``ClampMLP`` wraps an MLP and sets transcoder features exactly: the features are encoded from the MLP's
  *input* ``x`` and the output becomes ``mlp(x) + Σ_i (v − f_i(x)) · W_dec[i]`` — the transcoder spliced in
  with its error kept, as a circuit intervention sets a transcoder feature (every position).

Enable/disable and strength changes flip fields in place; several patches compose (deltas add; clamps
run in order). Removing the last patch puts the original module back. Attribute lookups that miss on a
wrapper fall through to the wrapped layer, so module paths (``model.layers.3.mlp``) keep resolving.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.placement import execution_device
from ..sae.model import SparseAutoencoder
from .lora import ModuleDelta


class _Forwarding(nn.Module):
    base_layer: nn.Module

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("base_layer", "entries"):
                raise
            return getattr(self._modules["base_layer"], name)


@dataclass
class DeltaEntry:
    delta: ModuleDelta
    scaling: float
    enabled: bool = True
    low_rank: bool = True
    At: Tensor | None = None
    """Embedding deltas: ``Aᵀ [vocab r]`` for an F.embedding lookup."""


class DeltaLayer(_Forwarding):
    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.entries: dict[str, DeltaEntry] = {}

    def add(self, patch_id: str, delta: ModuleDelta, scaling: float, enabled: bool) -> None:
        dev = execution_device(self.base_layer)

        def put(t: Tensor) -> Tensor:
            return t.to(device=dev, dtype=torch.float32)

        d = ModuleDelta(delta.path, delta.kind, put(delta.A), put(delta.B),
                        None if delta.bias is None else put(delta.bias))
        self.entries[patch_id] = DeltaEntry(d, scaling, enabled, not d.low_rank_is_zero,
                                            d.A.T.contiguous() if d.kind == "embedding" else None)

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = self.base_layer(x, *args, **kwargs)
        acc: Tensor | None = None  # Σ scaling · delta, float32 on the deltas' device
        for e in self.entries.values():
            if not e.enabled or e.scaling == 0.0:
                continue
            d = e.delta
            add: Tensor | None = None
            if e.low_rank:
                if d.kind == "embedding":
                    h = F.embedding(x.to(d.A.device), e.At)  # [.. r]
                else:
                    h = x.to(device=d.A.device, dtype=torch.float32) @ d.A.T  # [.. r]
                add = h @ d.B.T  # [.. out]
            if d.bias is not None:
                add = d.bias if add is None else add + d.bias
            if add is not None:
                acc = e.scaling * add if acc is None else acc + e.scaling * add
        if acc is None:
            return out
        return (out.float() + acc.to(out.device)).to(out.dtype)


@dataclass
class ClampEntry:
    sae: SparseAutoencoder
    features: Tensor
    """``[n]`` long, on the SAE's device."""
    dirs: Tensor
    """``[n d_model]`` decoder rows in residual units (float32, on the SAE's device)."""
    value: float
    enabled: bool = True


class ClampBlock(_Forwarding):
    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.entries: dict[str, ClampEntry] = {}

    def add(self, patch_id: str, sae: SparseAutoencoder, features: list[int], value: float, enabled: bool) -> None:
        dev = sae.W_dec.device
        idx = torch.tensor(features, dtype=torch.long, device=dev)
        dirs = sae.W_dec.detach()[idx].float() / sae.scale
        self.entries[patch_id] = ClampEntry(sae, idx, dirs, value, enabled)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.base_layer(*args, **kwargs)
        h = out[0] if isinstance(out, (tuple, list)) else out  # [batch pos d_model]
        changed = False
        for e in self.entries.values():
            if not e.enabled:
                continue
            f = e.sae.encode(h)[..., e.features]  # [batch pos n], float32 on the SAE's device
            h = h + ((e.value - f) @ e.dirs).to(device=h.device, dtype=h.dtype)
            changed = True
        if not changed:
            return out
        if isinstance(out, tuple):
            return (h, *out[1:])
        if isinstance(out, list):
            return [h, *out[1:]]
        return h


class ClampMLP(_Forwarding):
    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.entries: dict[str, ClampEntry] = {}

    add = ClampBlock.add

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        out = self.base_layer(x, *args, **kwargs)
        h = out[0] if isinstance(out, (tuple, list)) else out  # [batch pos d_model]
        changed = False
        for e in self.entries.values():
            if not e.enabled:
                continue
            f = e.sae.encode(x.float())[..., e.features]  # [batch pos n], read from the MLP input
            h = h + ((e.value - f) @ e.dirs).to(h.dtype)
            changed = True
        if not changed:
            return out
        if isinstance(out, tuple):
            return (h, *out[1:])
        return h


WRAPPERS = (DeltaLayer, ClampBlock, ClampMLP)


def _parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, name = path.rpartition(".")
    return (model.get_submodule(parent_path) if parent_path else model), name


def wrap(model: nn.Module, path: str, cls: type[DeltaLayer] | type[ClampBlock] | type[ClampMLP]) -> Any:
    """Swap the module at ``path`` for a ``cls`` wrapper (or return the wrapper already there)."""
    parent, name = _parent(model, path)
    current = parent._modules[name] if name in parent._modules else getattr(parent, name)
    if isinstance(current, cls):
        return current
    if isinstance(current, WRAPPERS):
        raise ValueError(f"{path} is already wrapped by a {type(current).__name__}")
    wrapper = cls(current)
    setattr(parent, name, wrapper)
    return wrapper


def find_wrapper(model: nn.Module, path: str) -> DeltaLayer | ClampBlock | ClampMLP | None:
    parent, name = _parent(model, path)
    current = parent._modules.get(name)
    return current if isinstance(current, WRAPPERS) else None


def unwrap(model: nn.Module, path: str) -> None:
    """Put the original module back at ``path`` if a wrapper is there."""
    parent, name = _parent(model, path)
    current = parent._modules.get(name)
    if isinstance(current, WRAPPERS):
        setattr(parent, name, current.base_layer)


def remove_entry(model: nn.Module, path: str, patch_id: str) -> None:
    """Drop one patch from the wrapper at ``path``; restore the original module when none is left."""
    w = find_wrapper(model, path)
    if w is None:
        return
    w.entries.pop(patch_id, None)
    if not w.entries:
        unwrap(model, path)


def set_entry(model: nn.Module, path: str, patch_id: str, *, enabled: bool | None = None,
              scaling: float | None = None, value: float | None = None) -> None:
    w = find_wrapper(model, path)
    if w is None or patch_id not in w.entries:
        return
    e = w.entries[patch_id]
    if enabled is not None:
        e.enabled = enabled
    if scaling is not None and isinstance(e, DeltaEntry):
        e.scaling = scaling
    if value is not None and isinstance(e, ClampEntry):
        e.value = value


def base_of_path(model: nn.Module, path: str) -> nn.Module:
    """The original module at ``path`` (through a wrapper if one is there)."""
    try:
        m = model.get_submodule(path)
    except AttributeError:
        from ..errors import Invalid

        raise Invalid(f"the loaded model has no module {path!r}") from None
    return m.base_layer if isinstance(m, WRAPPERS) else m
