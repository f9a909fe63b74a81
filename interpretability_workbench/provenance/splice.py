"""Forward passes with SAEs spliced into the model, for attribution and for ablation checks.

Splice at an upstream SAE's hook: ``x -> decode(f) + e`` with ``f = encode(x)`` and ``e = x - decode(f)``
both made *leaves* (``requires_grad``, detached from below). The value is unchanged (up to float rounding)
so the model's output is unchanged, but gradients stop at every spliced layer: the gradient of a node's
pre-activation w.r.t. ``f`` is the direct effect through the blocks between the two hooks only.
With residual-stream SAEs every path passes through the next SAE down, so edges link adjacent layers.
Position 0 (outlier norms, attention sink) is measured but never a source: its rows are masked out.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..model.hooks import hooks
from ..model.placement import to_stats
from .types import SAERef


class _Stop(Exception):
    """Raised inside the last needed hook: no work past the target's layer."""


class SpliceRun(NamedTuple):
    x: dict[str, Tensor]
    """sae_id -> activation read at its hook ``[pos d_in]`` (before its own splice; carries grad from lower leaves)."""
    feats: dict[str, Tensor]
    """sae_id -> leaf feature activations ``[pos d_sae]`` (upstream SAEs only)."""
    errors: dict[str, Tensor]
    """sae_id -> leaf reconstruction error ``[pos d_in]`` (upstream SAEs only)."""
    first: int
    """First position that may be a source (1 when the prompt has more than one token)."""


def node_pre(ref: SAERef, x: Tensor, index: int) -> Tensor:
    """Encoder pre-activation of one feature from activations ``x [.. d_in]`` -> ``[..]``."""
    sae = ref.sae
    h = x.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype) * sae.scale  # float32 on the SAE's device
    if sae.cfg.apply_b_dec_to_input:
        h = h - sae.b_dec
    return h @ sae.W_enc[:, index] + sae.b_enc[index]


def spliced_forward(model: torch.nn.Module, input_ids: Tensor, target: SAERef, upstream: list[SAERef]) -> SpliceRun:
    """One grad-enabled forward of ``input_ids [1 pos]`` with ``upstream`` SAEs spliced, stopped at ``target``."""
    x: dict[str, Tensor] = {}
    feats: dict[str, Tensor] = {}
    errors: dict[str, Tensor] = {}
    first = 1 if input_ids.shape[1] > 1 else 0

    def splice(ref: SAERef):
        def fn(act: Tensor) -> Tensor:
            a = act[0]  # [pos d_in], in the model's dtype on its block's device
            x[ref.sae_id] = a
            with torch.no_grad():
                a32 = to_stats(a.detach(), ref.sae.W_enc.device)
                f = ref.sae.encode(a32)
                err = a32 - ref.sae.decode(f)
            f.requires_grad_(True)
            err.requires_grad_(True)
            feats[ref.sae_id], errors[ref.sae_id] = f, err
            # back into the model: hooks() returns it on the activation's device, in its dtype
            return (ref.sae.decode(f) + err).unsqueeze(0)
        return fn

    def grab(act: Tensor) -> None:
        x[target.sae_id] = act[0]
        raise _Stop

    fwd = {ref.hook_name: splice(ref) for ref in upstream}
    fwd[target.hook_name] = grab
    with torch.enable_grad(), hooks(model, fwd):
        try:
            model(input_ids=input_ids, use_cache=False)
        except _Stop:
            pass
    if target.sae_id not in x:
        raise RuntimeError(f"the forward never reached {target.hook_name}")
    return SpliceRun(x, feats, errors, first)


ABLATION_BATCH = 16
"""Ablations per batched forward (plus one clean row)."""


class Ablation(NamedTuple):
    source: SAERef
    feature: int
    target: SAERef
    index: int
    position: int


@torch.no_grad()
def ablation_effects(model: torch.nn.Module, input_ids: Tensor, run: SpliceRun, refs: dict[str, SAERef],
                     ablations: list[Ablation]) -> list[float]:
    """For each ablation: target pre-activation (clean) − (source feature zeroed, errors kept).

    Ablations that share a source SAE run as one batched forward (row 0 clean, one row per ablation),
    stopped at the deepest target. SAE hooks strictly between source and target are held at their clean
    values, as the attribution holds their leaves fixed.
    """
    out = [0.0] * len(ablations)
    groups: dict[str, list[int]] = {}
    for i, ab in enumerate(ablations):
        groups.setdefault(ab.source.sae_id, []).append(i)
    chunks = [(sid, idxs[c:c + ABLATION_BATCH]) for sid, idxs in groups.items()
              for c in range(0, len(idxs), ABLATION_BATCH)]
    for src_id, idxs in chunks:
        src = refs[src_id]
        rows = [ablations[i] for i in idxs]
        n = len(rows) + 1
        f = run.feats[src_id].detach()  # [pos d_sae]
        cols = torch.tensor([r.feature for r in rows], device=f.device)
        coef = f[:, cols].T.clone()  # [n-1 pos]
        coef[:, : run.first] = 0
        delta = coef[:, :, None] * (src.sae.W_dec[cols] / src.sae.scale)[:, None, :]  # [n-1 pos d_in]
        delta = torch.cat([torch.zeros_like(delta[:1]), delta])  # row 0 clean
        targets = {r.target.sae_id: r.target for r in rows}
        last = max(targets.values(), key=lambda r: r.order)
        between = [r for r in refs.values() if src.order < r.order < last.order and r.sae_id in run.x
                   and r.sae_id not in targets]
        seen: dict[str, Tensor] = {}
        remaining = set(targets)

        def ablate(act: Tensor) -> Tensor:
            return act - delta.to(device=act.device, dtype=act.dtype)

        def hold(ref: SAERef):
            def fn(act: Tensor) -> Tensor:
                return run.x[ref.sae_id].detach().to(device=act.device, dtype=act.dtype).expand_as(act).clone()
            return fn

        def capture(ref: SAERef):
            def fn(act: Tensor) -> None:
                seen[ref.sae_id] = act
                remaining.discard(ref.sae_id)
                if not remaining:
                    raise _Stop
            return fn

        fwd: dict[str, Any] = {src.hook_name: ablate}
        fwd.update({r.hook_name: hold(r) for r in between})
        fwd.update({r.hook_name: capture(r) for r in targets.values()})
        with hooks(model, fwd):
            try:
                model(input_ids=input_ids.expand(n, -1), use_cache=False)
            except _Stop:
                pass
        diffs = []
        for row, i in enumerate(idxs, start=1):
            ab = ablations[i]
            pre = node_pre(ab.target, seen[ab.target.sae_id][:, ab.position], ab.index)  # [n]
            diffs.append(pre[0] - pre[row])
        for i, d in zip(idxs, torch.stack(diffs).tolist()):  # one host copy per batch
            out[i] = d
    return out
