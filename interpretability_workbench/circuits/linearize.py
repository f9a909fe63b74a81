"""Freeze a causal LM's attention patterns and norm denominators, inside a ``with`` block.

With the softmax patterns and the norm scales (``1/rms`` or ``1/std``) held fixed, attention is linear in
its values and every norm is an affine map, so the residual stream outside the MLPs becomes linear — the
precondition of circuit-tracer's *local replacement model*. Three modes:

- ``record``: values and gradients untouched; patterns ``[batch heads q k]`` and norm scales
  ``[batch pos 1]`` of this forward are stored in a ``FrozenStats``.
- ``detach``: as ``record``, and both are detached, so gradients flow only through the linear parts
  (attribution).
- ``freeze``: patterns and scales are *replaced* by those of an earlier recording (interventions measured
  in the linearised model; batch rows broadcast the recorded batch of 1).

Attention is run by one eager attention function registered with transformers under
``ATTN_IMPLEMENTATION`` and selected by switching ``config._attn_implementation`` for the duration of the
block (restored in ``finally``). The caller holds the model's lock: the switch is visible to other threads.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import torch
from torch import Tensor, nn

from ..errors import Invalid
from ..model.hook_map import arch_for, get_layers, get_module

Mode = Literal["record", "detach", "freeze"]
ATTN_IMPLEMENTATION = "iwb_linearized"


@dataclass
class FrozenStats:
    """What a forward saw, to be held fixed later."""

    patterns: dict[int, Tensor] = field(default_factory=dict)
    """layer -> attention pattern ``[batch heads q k]`` (after softmax, detached)."""
    norm_scales: dict[str, Tensor] = field(default_factory=dict)
    """norm module path -> ``1/rms`` or ``1/std`` per position ``[batch pos 1]`` (detached)."""


class _Controller:
    def __init__(self, mode: Mode, norm_mode: Mode, stats: FrozenStats, attn_layer: dict[int, int]) -> None:
        self.mode = mode
        self.norm_mode = norm_mode
        self.stats = stats
        self.attn_layer = attn_layer

    def pattern(self, module: nn.Module, p: Tensor) -> Tensor:
        layer = self.attn_layer.get(id(module))
        if layer is None:
            raise Invalid(f"attention module {type(module).__name__} is not one of this model's blocks")
        if self.mode == "freeze":
            frozen = self.stats.patterns[layer]
            return frozen.to(p.dtype).expand(p.shape[0], *frozen.shape[1:])
        self.stats.patterns[layer] = p.detach()
        return p.detach() if self.mode == "detach" else p

    def scale(self, path: str, s: Tensor) -> Tensor:
        if self.norm_mode == "freeze":
            frozen = self.stats.norm_scales[path]
            return frozen.to(s.dtype).expand(s.shape[0], *frozen.shape[1:])
        self.stats.norm_scales[path] = s.detach()
        return s.detach() if self.norm_mode == "detach" else s


_CURRENT: ContextVar[_Controller | None] = ContextVar("iwb_linearize", default=None)


def _attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
               scaling: float | None = None, dropout: float = 0.0, **kwargs: Any) -> tuple[Tensor, Tensor]:
    """Eager attention ``[batch heads q d_head]`` whose pattern the active controller records or fixes."""
    if kwargs.get("s_aux") is not None:
        raise Invalid("attention sinks are not supported by circuit tracing")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    softcap = kwargs.get("softcap")
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    p = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(value.dtype)
    ctl = _CURRENT.get()
    if ctl is not None:
        p = ctl.pattern(module, p)
    return torch.matmul(p, value).transpose(1, 2).contiguous(), p


def _register() -> None:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    ALL_ATTENTION_FUNCTIONS.register(ATTN_IMPLEMENTATION, _attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_IMPLEMENTATION, eager_mask)


_register()


# ---- norms -------------------------------------------------------------------------------------


def _norm_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.LayerNorm):
        return "layernorm"
    name = type(module).__name__
    if name.endswith("RMSNorm") and hasattr(module, "weight"):
        return "rmsnorm"
    if name.endswith("LayerNorm") and hasattr(module, "weight") and hasattr(module, "eps"):
        return "layernorm"
    return None


def _eps(module: nn.Module) -> float:
    for attr in ("variance_epsilon", "eps", "epsilon"):
        if hasattr(module, attr):
            return float(getattr(module, attr))
    raise Invalid(f"norm {type(module).__name__} has no epsilon attribute")


class _NormHook:
    """Forward hook recomputing a norm with its scale recorded, detached or replaced."""

    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.gain_offset: float | None = None  # RMSNorm gain is weight (Llama) or 1 + weight (Gemma)

    def __call__(self, module: nn.Module, args: tuple, out: Any) -> Tensor | None:
        ctl = _CURRENT.get()
        if ctl is None:
            return None
        x = args[0]
        actual = out[0] if isinstance(out, tuple) else out
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # fp32 at least, fp64 kept
        eps = _eps(module)
        if self.kind == "rmsnorm":
            s_true = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
            if self.gain_offset is None:
                self.gain_offset = self._find_offset(module, xf * s_true, actual)
            w = module.weight.to(xf.dtype) + self.gain_offset  # type: ignore[operator]
            new = (xf * (w * ctl.scale(self.path, s_true))).to(actual.dtype)  # one multiply in the backward
        else:
            mu = xf.mean(-1, keepdim=True)
            c = xf - mu
            s = ctl.scale(self.path, torch.rsqrt(c.pow(2).mean(-1, keepdim=True) + eps))
            w = getattr(module, "weight", None)
            b = getattr(module, "bias", None)
            h = c * (s if w is None else w.to(xf.dtype) * s)
            if b is not None:
                h = h + b.to(xf.dtype)
            new = h.to(actual.dtype)
        if ctl.norm_mode != "freeze":
            self._check(new, actual, module)
        return new

    def _find_offset(self, module: nn.Module, h: Tensor, actual: Tensor) -> float:
        w = module.weight.detach().to(h.dtype)  # type: ignore[union-attr]
        for offset in (0.0, 1.0):
            if torch.allclose((w + offset) * h.detach(), actual.detach().to(h.dtype), atol=1e-4, rtol=1e-3):
                return offset
        raise Invalid(f"norm {type(module).__name__} ({self.path}) is not an RMSNorm of a supported form")

    def _check(self, new: Tensor, actual: Tensor, module: nn.Module) -> None:
        err = float((new.detach().float() - actual.detach().float()).abs().max()) if new.numel() else 0.0
        tol = 1e-3 * (1.0 + float(actual.detach().float().abs().max()))
        if err > tol:
            raise Invalid(f"norm {type(module).__name__} ({self.path}) does not match the supported forms "
                          f"(max difference {err:.3g}); circuit tracing supports LayerNorm and RMSNorm")


def norm_modules(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Every LayerNorm/RMSNorm in the model: path -> (module, kind)."""
    out = {}
    for path, mod in model.named_modules():
        kind = _norm_kind(mod)
        if kind is not None:
            out[path] = (mod, kind)
    return out


def _attention_layers(model: nn.Module) -> dict[int, int]:
    spec = arch_for(model)
    return {id(get_module(block, spec.attn)): i for i, block in enumerate(get_layers(model))}


@contextmanager
def linearized(model: nn.Module, mode: Mode = "detach", stats: FrozenStats | None = None,
               *, norm_mode: Mode | None = None, freeze_parameters: bool = True) -> Iterator[FrozenStats]:
    """Run forwards of ``model`` with patterns and norm scales recorded, detached or frozen (see module doc).

    ``mode`` applies to attention patterns and, unless ``norm_mode`` says otherwise, to norm scales.
    Yields the ``FrozenStats`` being recorded (``record``/``detach``) or replayed (``freeze``). With
    ``freeze_parameters`` the model's parameters stop requiring grad inside the block, so autograd
    records only the paths from the caller's own leaves.
    """
    norm_mode = norm_mode or mode
    for m in (mode, norm_mode):
        if m not in ("record", "detach", "freeze"):
            raise ValueError(f"mode must be record, detach or freeze, got {m!r}")
    if "freeze" in (mode, norm_mode) and stats is None:
        raise ValueError("freeze mode needs the FrozenStats of an earlier recording")
    stats = stats if stats is not None else FrozenStats()
    config = model.config  # type: ignore[attr-defined]
    old_impl = config._attn_implementation
    flags = [(p, p.requires_grad) for p in model.parameters()] if freeze_parameters else []
    handles = []
    token = _CURRENT.set(_Controller(mode, norm_mode, stats, _attention_layers(model)))
    try:
        for path, (mod, kind) in norm_modules(model).items():
            handles.append(mod.register_forward_hook(_NormHook(path, kind)))
        config._attn_implementation = ATTN_IMPLEMENTATION
        for p, _ in flags:
            p.requires_grad_(False)
        yield stats
    finally:
        config._attn_implementation = old_impl
        for h in handles:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
        _CURRENT.reset(token)
