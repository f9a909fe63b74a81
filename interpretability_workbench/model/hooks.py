"""Scoped forward hooks, ``run_with_cache`` and stop-at-layer.

Hooks live only inside a ``with`` block and are removed in ``finally`` (a persistent patch is a module
swap, never a stray hook). A hook function receives the activation ``[batch pos d_model]`` and may
return a replacement tensor (or ``None`` to leave it unchanged). A replacement is put back on the
activation's device and in its dtype (``_like``), so a hook may compute on the SAE's device in float32
while the block runs on another GPU of a dispatched model, in bf16.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import torch
from torch import Tensor, nn

from .hook_map import arch_for, get_module, resolve

HookFn = Callable[[Tensor], "Tensor | None"]


class _StopForward(Exception):
    """Raised inside a hook once every activation we need has been captured."""


def _first(x: Any) -> Tensor:
    return x[0] if isinstance(x, (tuple, list)) else x


def _like(new: Tensor, act: Tensor) -> Tensor:
    """A hook's replacement on the activation's device and in its dtype (a no-op when they already match)."""
    if new.device != act.device or new.dtype != act.dtype:
        return new.to(device=act.device, dtype=act.dtype)
    return new


def _replace_first(x: Any, new: Tensor) -> Any:
    if isinstance(x, tuple):
        return (new, *x[1:])
    if isinstance(x, list):
        return [new, *x[1:]]
    return new


@contextmanager
def hooks(model: nn.Module, fwd_hooks: Mapping[str, HookFn]) -> Iterator[None]:
    """Register hooks on canonical hook names for the duration of the block."""
    handles = []
    try:
        for name, fn in fwd_hooks.items():
            hp = resolve(model, name)
            if hp.io == "output":
                def out_hook(_m: nn.Module, _inp: Any, out: Any, fn: HookFn = fn) -> Any:
                    act = _first(out)
                    new = fn(act)
                    return None if new is None else _replace_first(out, _like(new, act))

                handles.append(hp.module.register_forward_hook(out_hook))
            else:
                def pre_hook(_m: nn.Module, args: tuple, kwargs: dict, fn: HookFn = fn) -> Any:
                    if args:
                        new = fn(args[0])
                        return None if new is None else ((_like(new, args[0]), *args[1:]), kwargs)
                    act = kwargs["hidden_states"]
                    new = fn(act)
                    if new is None:
                        return None
                    return args, {**kwargs, "hidden_states": _like(new, act)}

                handles.append(hp.module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


class CacheResult(NamedTuple):
    logits: Tensor | None
    """``[batch pos d_vocab]``, or None when the forward stopped early."""
    cache: dict[str, Tensor]
    """hook name -> activation ``[batch pos d_model]`` (detached), in the model's dtype, on the device of the
    block that produced it (a dispatched model's blocks may sit on several devices)."""


def run_with_cache(
    model: nn.Module,
    input_ids: Tensor,
    names: list[str] | tuple[str, ...],
    *,
    stop_at_layer: bool = True,
    attention_mask: Tensor | None = None,
    extra_hooks: Mapping[str, HookFn] | None = None,
) -> CacheResult:
    """Forward ``input_ids`` and capture the named activations.

    With ``stop_at_layer`` the forward is aborted as soon as the last needed activation is captured,
    so recording at layer L does no work past L.
    """
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError("run_with_cache needs at least one hook name")
    cache: dict[str, Tensor] = {}
    remaining = set(names)

    def make(name: str) -> HookFn:
        def fn(act: Tensor) -> None:
            cache[name] = act.detach()
            remaining.discard(name)
            if stop_at_layer and not remaining:
                raise _StopForward
            return None
        return fn

    all_hooks: dict[str, HookFn] = {n: make(n) for n in names}
    if extra_hooks:
        overlap = set(extra_hooks) & set(all_hooks)
        if overlap:
            raise ValueError(f"extra hooks overlap cached names: {sorted(overlap)}")
        all_hooks.update(extra_hooks)
    logits = None
    with hooks(model, all_hooks):
        try:
            out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            logits = out.logits
        except _StopForward:
            pass
    return CacheResult(logits, cache)


class _Skip(nn.Module):
    """Stands in for a decoder block whose output is already known: passes hidden states through."""

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self.original = original

    def forward(self, hidden_states: Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        if hidden_states is None:
            hidden_states = args[0] if args else kwargs["hidden_states"]
        return hidden_states  # transformers>=5 decoder blocks return a tensor


def final_hidden_to_logits(model: nn.Module, hidden: Tensor) -> Tensor:
    """``[.. d_model]`` final-norm output -> logits ``[.. d_vocab]`` through the unembedding."""
    spec = arch_for(model)
    return get_module(model, spec.unembed)(hidden)


@torch.no_grad()
def forward_last_logits(
    model: nn.Module,
    input_ids: Tensor,
    *,
    from_layer: int | None = None,
    resid_pre: Tensor | None = None,
    fwd_hooks: Mapping[str, HookFn] | None = None,
    last_index: Tensor | None = None,
    cache: Any = None,
) -> Tensor:
    """Logits of the last position only ``[batch d_vocab]``.

    With ``from_layer`` and ``resid_pre`` (the cached input of block ``from_layer``, ``[batch pos d_model]``
    for the positions of ``input_ids``), blocks below ``from_layer`` are skipped and their cached output
    reused: only layers at and above it run.

    ``last_index [batch]`` picks each row's own last position (right-padded batches: a row's real tokens
    never attend to the padding after them, so its results equal the unpadded forward's).

    ``cache`` (a transformers ``Cache``) runs ``input_ids`` as the positions after the ones it holds
    (position ids and the causal mask follow from its length) and is filled in place: pass an empty
    ``DynamicCache`` to keep the keys and values of a whole forward, or a copy cropped to a prefix to run
    only the tail.
    """
    spec = arch_for(model)
    layers = get_module(model, spec.layers)
    norm = get_module(model, spec.final_norm)
    captured: dict[str, Tensor] = {}

    def grab(_m: nn.Module, _i: Any, out: Any) -> None:
        h = _first(out)  # [batch pos d_model]
        if last_index is None:
            captured["h"] = h[:, -1]
        else:
            captured["h"] = h[torch.arange(h.shape[0], device=h.device), last_index.to(h.device)]
        raise _StopForward

    saved: list[tuple[int, nn.Module]] = []
    handles = [norm.register_forward_hook(grab)]
    if from_layer is not None and from_layer > 0:
        if resid_pre is None:
            raise ValueError("from_layer needs resid_pre")
        for i in range(from_layer):
            saved.append((i, layers[i]))
            layers[i] = _Skip(layers[i])

        def inject(_m: nn.Module, args: tuple, kwargs: dict) -> Any:
            if args:
                return (resid_pre, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": resid_pre}

        handles.append(layers[from_layer].register_forward_pre_hook(inject, with_kwargs=True))
    try:
        with hooks(model, fwd_hooks or {}):
            try:
                if cache is None:
                    model(input_ids=input_ids, use_cache=False)
                else:
                    model(input_ids=input_ids, cache=cache, use_cache=True)
            except _StopForward:
                pass
    finally:
        for h in handles:
            h.remove()
        for i, mod in saved:
            layers[i] = mod
    return final_hidden_to_logits(model, captured["h"])
