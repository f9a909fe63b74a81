"""Canonical TransformerLens-style hook names. The only place that builds or parses them."""
from __future__ import annotations

import re
from typing import NamedTuple

HOOK_KINDS: tuple[str, ...] = ("resid_pre", "resid_post", "mlp_out", "attn_out")
_PATTERN = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|mlp_out|attn_out)$")


class HookName(NamedTuple):
    layer: int
    kind: str

    def __str__(self) -> str:  # pragma: no cover - trivial
        return hook_name(self.layer, self.kind)


def hook_name(layer: int, kind: str) -> str:
    """``blocks.{layer}.hook_{kind}``; ``kind`` may be given with or without the ``hook_`` prefix."""
    kind = kind.removeprefix("hook_")
    if kind not in HOOK_KINDS:
        raise ValueError(f"unknown hook kind {kind!r}; choose one of {', '.join(HOOK_KINDS)}")
    if layer < 0:
        raise ValueError(f"layer must be >= 0, got {layer}")
    return f"blocks.{layer}.hook_{kind}"


def expand(layers: list[int] | tuple[int, ...], kind: str) -> list[str]:
    """One hook name per layer (REST and CLI both name hooks this way)."""
    return [hook_name(int(layer), kind) for layer in layers]


def parse_hook_name(name: str) -> HookName:
    m = _PATTERN.match(name)
    if not m:
        raise ValueError(
            f"invalid hook name {name!r}; expected blocks.<layer>.hook_<{'|'.join(HOOK_KINDS)}>"
        )
    return HookName(int(m.group(1)), m.group(2))


def all_hook_names(n_layers: int) -> list[str]:
    return [hook_name(layer, kind) for layer in range(n_layers) for kind in HOOK_KINDS]
