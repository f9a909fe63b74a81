"""Feature provenance graph: where a feature comes from, breadth-first upstream across SAE layers.

Edge weights
  * virtual weight (always): ``(s_t / s_u) · W_dec_u[j] · W_enc_t[:, i]`` — how much one unit of upstream
    feature j moves target i's encoder pre-activation along the direct residual path. ``s`` are the SAEs'
    input normalisation scales (decode divides by ``s_u``, encode multiplies by ``s_t``); ``b_dec`` of
    either SAE only shifts the pre-activation by a constant, so it has no place in an edge weight.
  * attribution (with a prompt): ``Σ_q f_u[q, j] · ∂pre_t[p] / ∂f_u[q, j]`` with the SAEs spliced in and
    their errors kept (see splice.py), summed over source positions q, at the node's own position p:
    the target at the position where it fires most, an upstream node at the position where its
    attribution to its strongest child is largest. One backward per expanded node.
With a prompt, edges are chosen and weighted by attribution (sources: every chosen SAE below the node;
with residual-stream SAEs only the adjacent one is non-zero). Without, by virtual weight from the next
chosen SAE down. Downstream: the target decoder direction through the final norm's gain and the
unembedding (direct effect on logits; the norm's input-dependent scaling is left out).
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ..features.logits import feature_logit_vectors
from ..model.token_text import token_text, token_texts
from .splice import Ablation, SpliceRun, ablation_effects, node_pre, spliced_forward
from .types import (DownstreamLogits, EdgeCheck, GraphEdge, GraphNode, GraphOptions, LogitEffect,
                    ProvenanceGraph, SAERef, Validation)

LabelFn = Callable[[str, list[int]], dict[int, str | None]]
"""(sae_id, feature indices) -> index -> label (missing / None when there is no analysis)."""


class Candidate(NamedTuple):
    source: SAERef
    feature: int
    weight: float
    virtual_weight: float
    attribution: float | None
    position: int | None


def virtual_weights(src: SAERef, dst: SAERef, index: int) -> Tensor:
    """``[d_sae_src]``: the virtual weight of every feature of ``src`` into feature ``index`` of ``dst``."""
    with torch.no_grad():
        w = src.sae.W_dec @ dst.sae.W_enc[:, index].to(src.sae.W_dec.dtype)
        return w * (dst.sae.scale / src.sae.scale)


def downstream_logits(model: torch.nn.Module, tokenizer: object, ref: SAERef, index: int, n: int) -> DownstreamLogits:
    """Top ± tokens of the feature's direct logit effect: ``W_U · (γ ⊙ W_dec[i] / s)`` (centred first for
    LayerNorm models), float32 on the SAE's device — the rule of ``features/logits.py``."""
    if n <= 0:
        return DownstreamLogits()
    with torch.no_grad():
        eff = feature_logit_vectors(model, ref.sae.W_dec[index: index + 1], ref.sae.scale)[0]  # [d_vocab]
        k = min(n, eff.shape[0])
        top, bot = eff.topk(k), (-eff).topk(k)
        vals = torch.stack([top.values, -bot.values]).tolist()  # one host copy each
        ids = torch.stack([top.indices, bot.indices]).tolist()

    def conv(v: list[float], i: list[int]) -> list[LogitEffect]:
        return [LogitEffect(token_text(tokenizer, t), t, x) for x, t in zip(v, i)]

    return DownstreamLogits(conv(vals[0], ids[0]), conv(vals[1], ids[1]))


def pearson(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    a, b = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    if den == 0.0:
        return None
    return float((a @ b) / den)


class _Tracer:
    """Incoming-edge candidates of a node, from the spliced run (prompt) or the weights alone."""

    def __init__(self, upstream: list[SAERef], run: SpliceRun | None) -> None:
        self.upstream, self.run = upstream, run

    def below(self, ref: SAERef) -> list[SAERef]:
        return [u for u in self.upstream if u.order < ref.order]

    def candidates(self, ref: SAERef, index: int, position: int | None, top_k: int, threshold: float) -> tuple[list[Candidate], float | None]:
        srcs = self.below(ref)
        if not srcs:
            return [], None
        if self.run is None:
            src = max(srcs, key=lambda u: u.order)
            vw = virtual_weights(src, ref, index)
            vals, idx = vw.abs().topk(min(top_k, vw.shape[0]))
            (v_l, w_l), idx_l = torch.stack([vals, vw[idx]]).tolist(), idx.tolist()  # one host copy each
            return [Candidate(src, j, w, w, None, None) for v, j, w in zip(v_l, idx_l, w_l) if v > threshold], None
        run = self.run
        pre = node_pre(ref, run.x[ref.sae_id][position], index)
        leaves = [run.feats[u.sae_id] for u in srcs] + [run.errors[u.sae_id] for u in srcs]
        grads = torch.autograd.grad(pre, leaves, retain_graph=True, allow_unused=True)
        err_parts: list[Tensor] = []
        out: list[Candidate] = []
        for n_src, u in enumerate(srcs):
            g_f, g_e = grads[n_src], grads[len(srcs) + n_src]
            if g_e is not None:
                err_parts.append((run.errors[u.sae_id][run.first:].detach() * g_e[run.first:]).sum())
            if g_f is None:
                continue
            contrib = (run.feats[u.sae_id] * g_f).detach()  # [pos d_sae]
            contrib[: run.first] = 0
            total = contrib.sum(0)  # [d_sae]
            vals, idx = total.abs().topk(min(top_k, total.shape[0]))
            vw = virtual_weights(u, ref, index)
            pos = contrib[:, idx].abs().argmax(0)  # [k] the source position contributing most
            (v_l, t_l, w_l), (idx_l, pos_l) = (torch.stack([vals, total[idx], vw[idx].to(total.device)]).tolist(),
                                               torch.stack([idx, pos]).tolist())
            out.extend(Candidate(u, j, t, w, t, p) for v, j, t, w, p in zip(v_l, idx_l, t_l, w_l, pos_l)
                       if v > threshold)
        err_attr = float(torch.stack(err_parts).sum()) if err_parts else 0.0
        out.sort(key=lambda c: -abs(c.weight))
        return out[:top_k], err_attr


def _node_ids(refs: list[SAERef]) -> Callable[[SAERef, int], str]:
    layers = [r.layer for r in refs]
    unique = len(set(layers)) == len(layers)
    return (lambda r, i: f"L{r.layer}/{i}") if unique else (lambda r, i: f"L{r.layer}.{r.kind}/{i}")


def build_graph(
    model: torch.nn.Module,
    tokenizer: object,
    target: SAERef,
    index: int,
    upstream: list[SAERef],
    *,
    input_ids: Tensor | None = None,
    prompt: str | None = None,
    options: GraphOptions | None = None,
    labels: LabelFn | None = None,
    n_layers: int | None = None,
) -> ProvenanceGraph:
    """Trace feature ``index`` of ``target`` upstream through ``upstream`` SAEs (each below the target).

    ``input_ids [1 pos]`` adds attribution, node activations and validation. The caller holds the model
    lock and has checked ``index`` and that the SAEs match the model.
    """
    t0 = time.perf_counter()
    opts = options or GraphOptions()
    upstream = sorted(upstream, key=lambda u: u.order, reverse=True)
    if any(u.order >= target.order for u in upstream):
        raise ValueError("every upstream SAE must read a hook point before the target's")
    refs = {r.sae_id: r for r in [target, *upstream]}
    node_id = _node_ids([target, *upstream])
    run = spliced_forward(model, input_ids, target, upstream) if input_ids is not None else None
    tracer = _Tracer(upstream, run)
    tokens = token_texts(tokenizer, input_ids[0].tolist()) if input_ids is not None else []

    def activation(ref: SAERef, i: int, pos: int | None) -> float | None:
        if run is None or pos is None:
            return None
        if ref.sae_id in run.feats:
            return float(run.feats[ref.sae_id][pos, i].detach())
        with torch.no_grad():
            return float(ref.sae.encode(run.x[ref.sae_id][pos:pos + 1].detach())[0, i])

    t_pos = None
    if run is not None:
        with torch.no_grad():
            xt = run.x[target.sae_id].detach()
            acts = target.sae.encode(xt)[:, index]
            score = acts if float(acts[run.first:].max()) > 0 else node_pre(target, xt, index)
            t_pos = run.first + int(score[run.first:].argmax())
    tid = node_id(target, index)
    nodes: dict[str, GraphNode] = {tid: GraphNode(
        tid, "target", target.layer, index, target.sae_id, target.hook_name, None,
        activation(target, index, t_pos), t_pos, tokens[t_pos] if t_pos is not None else None)}
    where: dict[str, tuple[SAERef, int, int | None]] = {tid: (target, index, t_pos)}
    edges: list[GraphEdge] = []
    frontier = [tid]
    full = False
    while frontier and not full:
        nxt: list[tuple[float, str]] = []
        for nid in frontier:
            ref, i, pos = where[nid]
            cands, err_attr = tracer.candidates(ref, i, pos, opts.top_k, opts.threshold)
            nodes[nid].error_attribution = err_attr
            for c in cands:
                if len(edges) >= opts.max_edges:
                    full = True
                    break
                sid = node_id(c.source, c.feature)
                if sid not in nodes:
                    if len(nodes) >= opts.max_nodes:
                        continue
                    nodes[sid] = GraphNode(sid, "feature", c.source.layer, c.feature, c.source.sae_id,
                                           c.source.hook_name, None, activation(c.source, c.feature, c.position),
                                           c.position, tokens[c.position] if c.position is not None else None)
                    where[sid] = (c.source, c.feature, c.position)
                    nxt.append((abs(c.weight), sid))
                edges.append(GraphEdge(sid, nid, c.weight, c.virtual_weight, c.attribution))
            if full:
                break
        frontier = [sid for _, sid in sorted(nxt, key=lambda t: -t[0])]

    if labels is not None:
        by_sae: dict[str, list[int]] = {}
        for nd in nodes.values():
            by_sae.setdefault(nd.sae_id or "", []).append(nd.feature)
        found = {sid: labels(sid, idx) for sid, idx in by_sae.items()}
        for nd in nodes.values():
            nd.label = found.get(nd.sae_id or "", {}).get(nd.feature)

    validation = None
    if run is not None:
        validation = _validate(model, input_ids, run, refs, edges, where, opts.validate)
    down = downstream_logits(model, tokenizer, target, index, opts.n_logits)
    out_nodes = list(nodes.values())
    logit_layer = n_layers if n_layers is not None else target.layer + 1
    for le in [*down.positive, *down.negative]:
        lid = f"logit/{le.id}"
        out_nodes.append(GraphNode(lid, "logit", logit_layer, le.id, label=le.token))
        edges.append(GraphEdge(tid, lid, le.effect, le.effect, None))
    return ProvenanceGraph(tid, prompt, len({u.order for u in upstream}), [u.sae_id for u in upstream],
                           out_nodes, edges, validation, down, time.perf_counter() - t0)


def _validate(model: torch.nn.Module, input_ids: Tensor, run: SpliceRun, refs: dict[str, SAERef],
              edges: list[GraphEdge], where: dict[str, tuple[SAERef, int, int | None]], n: int) -> Validation:
    """Ablate the sources of the ``n`` strongest edges; compare each attribution with the measured change."""
    chosen = sorted((e for e in edges if e.attribution is not None), key=lambda e: -abs(e.attribution or 0.0))[:n]
    if not chosen:
        return Validation()
    abls = []
    for e in chosen:
        src, j, _ = where[e.source]
        dst, i, pos = where[e.target]
        abls.append(Ablation(src, j, dst, i, int(pos or 0)))
    actual = ablation_effects(model, input_ids, run, refs, abls)
    checks = [EdgeCheck(e.source, e.target, float(e.attribution or 0.0), a) for e, a in zip(chosen, actual)]
    return Validation(checks, pearson([c.predicted for c in checks], [c.actual for c in checks]))
