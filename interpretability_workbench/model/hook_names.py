"""Canonical TransformerLens-style hook names. The only place that builds or parses them."""
from __future__ import annotations

import re
from typing import NamedTuple

HOOK_KINDS: tuple[str, ...] = ("resid_pre", "resid_post", "mlp_out", "attn_out")
"""Residual-stream-width hook points listed for every model (SAE sites)."""
MLP_IN = "mlp_in"
"""The MLP's input after its norm (TransformerLens ``blocks.L.ln2.hook_normalized``): what a transcoder
reads. Named in TransformerLens's form, so it is not in ``HOOK_KINDS``."""
ALL_KINDS: tuple[str, ...] = (*HOOK_KINDS, MLP_IN)
_PATTERN = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|mlp_out|attn_out)$")
_MLP_IN_PATTERN = re.compile(r"^blocks\.(\d+)\.ln2\.hook_normalized$")


class HookName(NamedTuple):
    layer: int
    kind: str

    def __str__(self) -> str:  # pragma: no cover - trivial
        return hook_name(self.layer, self.kind)


def hook_name(layer: int, kind: str) -> str:
    """``blocks.{layer}.hook_{kind}`` (``blocks.{layer}.ln2.hook_normalized`` for ``mlp_in``); ``kind`` may be
    given with or without the ``hook_`` prefix."""
    kind = kind.removeprefix("hook_")
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown hook kind {kind!r}; choose one of {', '.join(ALL_KINDS)}")
    if layer < 0:
        raise ValueError(f"layer must be >= 0, got {layer}")
    if kind == MLP_IN:
        return f"blocks.{layer}.ln2.hook_normalized"
    return f"blocks.{layer}.hook_{kind}"


def expand(layers: list[int] | tuple[int, ...], kind: str) -> list[str]:
    """One hook name per layer (REST and CLI both name hooks this way)."""
    return [hook_name(int(layer), kind) for layer in layers]


def parse_hook_name(name: str) -> HookName:
    m = _PATTERN.match(name)
    if m:
        return HookName(int(m.group(1)), m.group(2))
    m = _MLP_IN_PATTERN.match(name)
    if m:
        return HookName(int(m.group(1)), MLP_IN)
    raise ValueError(
        f"invalid hook name {name!r}; expected blocks.<layer>.hook_<{'|'.join(HOOK_KINDS)}> "
        "or blocks.<layer>.ln2.hook_normalized"
    )


def all_hook_names(n_layers: int) -> list[str]:
    return [hook_name(layer, kind) for layer in range(n_layers) for kind in HOOK_KINDS]
