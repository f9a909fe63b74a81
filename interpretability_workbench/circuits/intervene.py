"""Interventions on the real model, to check a graph's edges.

Setting feature ``f`` of the layer-``l`` transcoder to ``v`` at position ``p`` splices the transcoder in with
its error kept: the MLP output becomes ``transcoder(x) + error + (v - a) W_dec[f]`` = ``mlp(x) + (v - a)
W_dec[f]`` at that position (``a`` the clean activation), everything else untouched. The change is then
measured at a target: a feature's pre-activation (what an edge predicts) or a logit minus the mean logit.

``freeze`` picks how much of the model runs freely downstream:

- ``none``: the real model (attention, norms and MLPs all respond): the total effect;
- ``attention``: attention patterns held at their clean values (circuit-tracer's default);
- ``direct``: the local replacement model — patterns and norm scales held, every MLP output held at its
  clean value plus its transcoder's skip term: the change equals the graph's edge.

Each intervention is one row of a batched forward (row 0 is the clean prompt).
"""
from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from ..errors import Invalid
from ..model.hook_map import arch_for, get_layers, get_module
from .graph import AttributionGraph
from .linearize import FrozenStats, linearized
from .prune import PruneResult
from .replacement import Transcoders, layer_transcoders

Freeze = Literal["none", "attention", "direct"]


class Intervention(NamedTuple):
    layer: int
    pos: int
    feature: int
    value: float
    """New activation (0 = ablate)."""


class Target(NamedTuple):
    kind: str
    """feature | logit"""
    layer: int
    """Block of a feature target (ignored for logits)."""
    pos: int
    """Position of a feature target (logits: the last position)."""
    index: int
    """Feature index, or token id."""


class _Clean(NamedTuple):
    x_in: list[Tensor]  # [pos d] per layer
    mlp_out: list[Tensor]  # [pos d]
    stats: FrozenStats


def _mlp_hooks(model: nn.Module, fns: dict[int, Any]) -> list:
    spec = arch_for(model)
    return [get_module(block, spec.mlp).register_forward_hook(fns[i])
            for i, block in enumerate(get_layers(model)) if i in fns]


def _forward_logits(model: nn.Module, ids: Tensor) -> Tensor:
    from .replacement import _forward_kwargs

    return model(input_ids=ids, use_cache=False, **_forward_kwargs(model)).logits[:, -1]


@torch.no_grad()
def _record(model: nn.Module, ids: Tensor) -> _Clean:
    n = len(get_layers(model))
    x_in: list[Tensor | None] = [None] * n
    outs: list[Tensor | None] = [None] * n

    def grab(layer: int):
        def fn(_m: nn.Module, args: tuple, out: Any) -> None:
            x_in[layer] = args[0][0].detach()
            outs[layer] = (out[0] if isinstance(out, tuple) else out)[0].detach()
        return fn

    with linearized(model, "record") as stats:
        handles = _mlp_hooks(model, {i: grab(i) for i in range(n)})
        try:
            _forward_logits(model, ids[None])
        finally:
            for h in handles:
                h.remove()
    return _Clean(x_in, outs, stats)  # type: ignore[arg-type]


@torch.no_grad()
def intervention_effects(model: nn.Module, transcoders: Transcoders, input_ids: Tensor,
                         interventions: Sequence[Intervention], targets: Sequence[Target], *,
                         freeze: Freeze = "none", batch_size: int = 16) -> Tensor:
    """Change of each target under each intervention ``[n_interventions n_targets]`` (intervened minus clean)."""
    if freeze not in ("none", "attention", "direct"):
        raise Invalid(f"freeze must be none, attention or direct, got {freeze!r}")
    tcs = layer_transcoders(model, transcoders)
    ids = input_ids.reshape(-1).to(next(model.parameters()).device)
    n_pos, n_layers = ids.shape[0], len(tcs)
    _check_interventions(tcs, n_pos, interventions)
    for t in targets:
        if t.kind == "feature" and (not 0 <= t.layer < n_layers or tcs[t.layer] is None or not 0 <= t.pos < n_pos):
            raise Invalid(f"target {t} is outside the transcoders or the prompt")
        if t.kind not in ("feature", "logit"):
            raise Invalid(f"target kind must be feature or logit, got {t.kind!r}")
    clean = _record(model, ids)
    out = torch.zeros(len(interventions), len(targets))
    for c in range(0, len(interventions), batch_size):
        chunk = interventions[c:c + batch_size]
        logits, reads = _run_rows(model, tcs, ids, clean, [[iv] for iv in chunk], freeze)
        rows = _targets(tcs, logits, reads, targets)
        out[c:c + len(chunk)] = (rows[1:] - rows[:1]).float().cpu()
    return out


def _check_interventions(tcs: list, n_pos: int, interventions: Sequence[Intervention]) -> None:
    for iv in interventions:
        if not 0 <= iv.layer < len(tcs) or tcs[iv.layer] is None or not 0 <= iv.pos < n_pos:
            raise Invalid(f"intervention {iv} is outside the transcoders or the prompt")
        if not 0 <= iv.feature < tcs[iv.layer].d_tc:
            raise Invalid(f"intervention {iv}: the layer-{iv.layer} transcoder has features 0..{tcs[iv.layer].d_tc - 1}")


class Distributions(NamedTuple):
    clean: Tensor
    """Last-position logits of the model ``[d_vocab]``."""
    intervened: Tensor
    """Last-position logits with every intervention applied at once ``[d_vocab]``."""


@torch.no_grad()
def intervene_logits(model: nn.Module, transcoders: Transcoders, input_ids: Tensor,
                     interventions: Sequence[Intervention], *, freeze: Freeze = "none") -> Distributions:
    """The next-token logits before and after setting several features at once (a supernode: ablate or
    steer them together), each transcoder spliced in with its error kept."""
    if freeze not in ("none", "attention", "direct"):
        raise Invalid(f"freeze must be none, attention or direct, got {freeze!r}")
    tcs = layer_transcoders(model, transcoders)
    ids = input_ids.reshape(-1).to(next(model.parameters()).device)
    _check_interventions(tcs, ids.shape[0], interventions)
    logits, _ = _run_rows(model, tcs, ids, _record(model, ids), [list(interventions)], freeze)
    return Distributions(logits[0].float().cpu(), logits[1].float().cpu())


def _targets(tcs: list, logits: Tensor, reads: dict[int, Tensor], targets: Sequence[Target]) -> Tensor:
    cols = []
    for t in targets:
        if t.kind == "logit":
            cols.append(logits[:, t.index] - logits.mean(-1))
        else:
            tc = tcs[t.layer]
            cols.append(tc.pre_activations(reads[t.layer][:, t.pos])[:, t.index])
    return torch.stack(cols, 1)


def _run_rows(model: nn.Module, tcs: list, ids: Tensor, clean: _Clean, groups: Sequence[Sequence[Intervention]],
              freeze: Freeze) -> tuple[Tensor, dict[int, Tensor]]:
    """Row 0 the clean prompt, row ``i`` with every intervention of ``groups[i-1]``: last-position logits
    ``[n d_vocab]`` and the MLP inputs each layer read ``{layer: [n pos d_model]}``."""
    n = len(groups) + 1
    n_layers = len(tcs)
    d = clean.x_in[0].shape[-1]
    delta = [torch.zeros(n, ids.shape[0], d, dtype=clean.mlp_out[0].dtype, device=ids.device) for _ in range(n_layers)]
    for row, group in enumerate(groups, start=1):
        for iv in group:
            tc = tcs[iv.layer]
            a = tc.encode(clean.x_in[iv.layer][iv.pos].to(tc.W_enc.dtype))[iv.feature]
            delta[iv.layer][row, iv.pos] += ((iv.value - a) * tc.W_dec[iv.feature]).to(delta[0].dtype)
    reads: dict[int, Tensor] = {}

    def hook(layer: int):
        tc = tcs[layer]

        def fn(_m: nn.Module, args: tuple, out: Any) -> Tensor:
            x = args[0]
            reads[layer] = x
            y = out[0] if isinstance(out, tuple) else out
            if freeze == "direct":
                y = clean.mlp_out[layer].expand_as(y)
                if tc is not None and tc.W_skip is not None:
                    y = y + tc.skip_term(x - clean.x_in[layer]).to(y.dtype)
            return y + delta[layer]
        return fn

    mode = "record" if freeze == "none" else "freeze"
    norm_mode = "freeze" if freeze == "direct" else "record"
    # what is recorded goes into a fresh object: the clean recording stays as it is for the next chunk
    stats = FrozenStats(patterns=dict(clean.stats.patterns), norm_scales=dict(clean.stats.norm_scales))
    with linearized(model, mode, stats, norm_mode=norm_mode):  # type: ignore[arg-type]
        handles = _mlp_hooks(model, {i: hook(i) for i in range(n_layers)})
        try:
            logits = _forward_logits(model, ids[None].expand(n, -1))  # [n d_vocab]
        finally:
            for h in handles:
                h.remove()
    return logits, reads


# ---- validation of a graph ---------------------------------------------------------------------


class EdgeCheck(NamedTuple):
    source: int
    """Node index of the source feature."""
    target: int
    """Node index of the target (feature or logit)."""
    predicted: float
    """Change the graph predicts (minus the edge weight for an ablation)."""
    measured: float
    """Change measured in the model."""


class ValidationReport(NamedTuple):
    checks: list[EdgeCheck]
    pearson: float | None
    """Correlation of predicted and measured changes (None with fewer than 2 edges or no variance)."""
    sign_agreement: float | None
    """Share of edges whose measured change has the predicted sign."""
    freeze: str


def _pearson(a: Tensor, b: Tensor) -> float | None:
    if a.numel() < 2:
        return None
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 and math.isfinite(denom) else None


def strongest_edges(graph: AttributionGraph, n: int, prune: PruneResult | None = None) -> list[tuple[int, int]]:
    """(target, source) of the ``n`` largest-|weight| edges from a feature to a feature or a logit."""
    adj = graph.adjacency.abs().clone()
    keep = torch.zeros_like(adj, dtype=torch.bool)
    targets = torch.cat([torch.arange(graph.n_features), torch.arange(graph.logit_start, graph.n_nodes)])
    keep[targets[:, None], torch.arange(graph.n_features)[None, :]] = True
    if prune is not None:
        keep &= prune.edge_mask
    adj[~keep] = 0
    flat = adj.flatten()
    top = flat.topk(min(n, int((flat > 0).sum()))).indices
    return [(int(i) // adj.shape[1], int(i) % adj.shape[1]) for i in top]


def validate_graph(model: nn.Module, transcoders: Transcoders, graph: AttributionGraph, *, n_edges: int = 20,
                   freeze: Freeze = "none", prune: PruneResult | None = None, batch_size: int = 16) -> ValidationReport:
    """Ablate the source of each of the strongest edges and compare the target's change with ``-weight``."""
    edges = strongest_edges(graph, n_edges, prune)
    sources = sorted({s for _, s in edges})
    tgt_nodes = sorted({t for t, _ in edges})
    ivs = []
    for s in sources:
        ref = graph.node(s)
        ivs.append(Intervention(ref.layer, ref.pos, ref.index, 0.0))
    tgts = []
    for t in tgt_nodes:
        ref = graph.node(t)
        tgts.append(Target("logit" if ref.kind == "logit" else "feature", ref.layer, ref.pos, ref.index))
    measured = intervention_effects(model, transcoders, torch.tensor(graph.input_ids), ivs, tgts, freeze=freeze,
                                    batch_size=batch_size)
    checks = [EdgeCheck(s, t, -float(graph.adjacency[t, s]), float(measured[sources.index(s), tgt_nodes.index(t)]))
              for t, s in edges]
    pred = torch.tensor([c.predicted for c in checks])
    meas = torch.tensor([c.measured for c in checks])
    agree = float(((pred * meas) > 0).float().mean()) if checks else None
    return ValidationReport(checks, _pearson(pred, meas), agree, freeze)
