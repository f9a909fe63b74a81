"""Prompt attribution graphs: direct effects in the local replacement model, by batched backward passes.

The recorded forward (``replacement.record_prompt``) is linear from its leaves — token embeddings and MLP
output nodes — to every MLP input and to the final-norm output. A *target* reads one of those with a
vector: a feature reads its MLP input at its position with its encoder vector ``W_enc[:, f]`` (its
pre-activation), a logit node reads the last position's final-norm output with the demeaned unembedding
``W_U[v] - mean_v W_U[v]`` (the logit relative to the mean logit). One backward of a batch of targets
gives, per target, the gradient at every source site; contracting it with the source's vector gives the
edge: ``a_s W_dec[s]`` for a feature, the error vector for an error node, the embedding for a token node.

Many targets go in one backward: ``torch.autograd.grad(..., is_grads_batched=True)`` vmaps the backward
over the batch of one-hot output gradients, so the model runs forward once, at batch size 1. Targets
are processed in circuit-tracer's order: logits first, then features by their influence on the logits so
far (re-ranked every ``update_interval`` batches) until ``max_feature_nodes`` have rows; each queue is
sorted by layer so a batch backpropagates through as few blocks as possible.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import Invalid
from ..model.hook_map import arch_for, get_module
from .graph import AttributionGraph
from .prune import partial_influences
from .replacement import ActiveFeatures, PromptRecord, Transcoders, active_features, layer_transcoders, record_prompt
from .transcoder import Transcoder


@dataclass
class AttributionOptions:
    """How many targets to attribute and how."""

    max_n_logits: int = 10
    """Most logit nodes."""
    desired_logit_prob: float = 0.95
    """Logit nodes: the most probable tokens until their cumulative probability reaches this."""
    target_tokens: tuple[int, ...] = ()
    """Token ids that are logit nodes whatever their probability (after the most probable ones)."""
    batch_size: int = 128
    """Target rows per backward pass."""
    max_feature_nodes: int | None = None
    """Feature nodes with rows (the most influential first); None = every active feature."""
    update_interval: int = 4
    """Batches between re-rankings of the features by influence."""
    zero_first_position: bool = True
    """No feature or error nodes at position 0 (BOS / attention sink), as circuit-tracer."""
    position_buckets: int = 4
    """Feature rows of targets at position ``p`` depend only on positions ``<= p`` (causal attention): the
    prompt is also recorded cut after each of this many equal spans of positions, and each batch of feature
    targets backpropagates through the shortest recording that holds them (1: one recording, no cut)."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_n_logits <= 1000:
            raise ValueError("max_n_logits must be in 1..1000")
        if not 0 < self.desired_logit_prob <= 1:
            raise ValueError("desired_logit_prob must be in (0, 1]")
        if self.batch_size < 1 or self.update_interval < 1:
            raise ValueError("batch_size and update_interval must be >= 1")
        if self.max_feature_nodes is not None and self.max_feature_nodes < 0:
            raise ValueError("max_feature_nodes must be >= 0 (or None for all)")
        if self.position_buckets < 1:
            raise ValueError("position_buckets must be >= 1")


class LogitTargets(NamedTuple):
    tokens: Tensor
    """Token ids ``[n_logits]``, most probable first."""
    probabilities: Tensor
    """Their probabilities ``[n_logits]``."""
    vectors: Tensor
    """Demeaned unembedding rows ``[n_logits d_model]``."""


def logit_targets(last_logits: Tensor, unembed: Tensor, max_n_logits: int = 10,
                  desired_prob: float = 0.95, extra: Sequence[int] = ()) -> LogitTargets:
    """Most probable tokens until cumulative probability ``desired_prob`` (at most ``max_n_logits``), then
    the ``extra`` tokens not among them (targets the researcher names), with ``unembed [d_vocab d_model]``
    rows minus their mean: a logit node is a logit minus the mean logit."""
    probs = torch.softmax(last_logits.float(), dim=-1)
    top_p, top_idx = probs.topk(min(max_n_logits, probs.shape[-1]))
    cutoff = int(torch.searchsorted(top_p.cumsum(0), torch.tensor(desired_prob))) + 1
    chosen = top_idx[:cutoff].tolist()
    for t in extra:
        if not 0 <= int(t) < probs.shape[-1]:
            raise ValueError(f"target token id {t} is outside the vocabulary (0..{probs.shape[-1] - 1})")
        if int(t) not in chosen:
            chosen.append(int(t))
    idx = torch.tensor(chosen, dtype=torch.long, device=top_idx.device)
    vecs = unembed[idx].float() - unembed.float().mean(0, keepdim=True)
    return LogitTargets(idx, probs[idx], vecs)


class _Sources:
    """Contracts batched gradients at the source sites into adjacency rows
    ``[batch n_active + n_layers*pos + pos]`` (features, errors, tokens).

    Per layer, the vectors a gradient at one position is dotted with — the scaled decoder rows of that
    position's active features, then its error vector — are packed as ``[pos d K+1]``, so one batched
    matmul per layer yields every feature and error column of that layer."""

    def __init__(self, feats: ActiveFeatures, rec: PromptRecord, n_layers: int) -> None:
        self.n_layers = n_layers
        self.n_pos = n_pos = rec.input_ids.shape[0]
        self.n_active = n_active = int(feats.layer.shape[0])
        self.n_cols = n_active + (n_layers + 1) * n_pos
        self.embeds = rec.embeds.detach()[0]
        d = self.embeds.shape[-1]
        dev = self.embeds.device
        cols = torch.arange(n_active, device=dev)
        self.packed: list[Tensor] = []  # per layer [pos d K+1]
        self.slots: list[Tensor] = []  # per layer: flat indices into [pos*(K+1)] that hold a column
        self.columns: list[Tensor] = []  # per layer: their adjacency columns
        for layer in range(n_layers):
            m = feats.layer == layer
            pos = feats.pos[m]
            counts = torch.bincount(pos, minlength=n_pos)
            first = counts.cumsum(0) - counts  # features of one position are contiguous (sorted)
            slot = torch.arange(pos.shape[0], device=dev) - first[pos]
            k = int(counts.max()) if pos.numel() else 0
            vecs = feats.errors.new_zeros(n_pos, k + 1, d)
            vecs[pos, slot] = feats.decoder[m]
            vecs[:, k] = feats.errors[layer]
            flat = torch.cat([pos * (k + 1) + slot, torch.arange(n_pos, device=dev) * (k + 1) + k])
            err_cols = n_active + layer * n_pos + torch.arange(n_pos, device=dev)
            self.packed.append(vecs.transpose(1, 2).contiguous())
            self.slots.append(flat)
            self.columns.append(torch.cat([cols[m], err_cols]))

    def contract(self, grads: Sequence[Tensor | None], grad_embeds: Tensor | None, batch: int) -> Tensor:
        out = self.embeds.new_zeros(batch, self.n_cols)
        for layer, g in enumerate(grads):
            if g is None:
                continue
            vals = torch.bmm(g[:, 0].transpose(0, 1), self.packed[layer])  # [pos B K+1]
            vals = vals.transpose(0, 1).reshape(batch, -1)  # [B pos*(K+1)]
            out[:, self.columns[layer]] = vals[:, self.slots[layer]]
        if grad_embeds is not None:
            t0 = self.n_active + self.n_layers * self.n_pos
            out[:, t0:t0 + self.n_pos] = (grad_embeds[:, 0] * self.embeds).sum(-1)
        return out


def backward_rows(rec: PromptRecord, sources: _Sources, layers: Tensor, positions: Tensor, vecs: Tensor) -> Tensor:
    """Adjacency rows ``[batch n_source_cols]`` of targets reading ``vecs [batch d_model]`` at
    ``(layers, positions)``; layer ``n_layers`` means the final-norm output (logit targets)."""
    n_layers = sources.n_layers
    batch = int(layers.shape[0])
    dev = rec.embeds.device
    layers, positions, vecs = layers.to(dev), positions.to(dev), vecs.to(dev)
    order = torch.argsort(layers, stable=True)
    pieces = []
    for layer in layers.unique().tolist():
        m = order[layers[order] == layer]
        read = rec.final_hidden if layer == n_layers else rec.mlp_in[layer]
        pieces.append((read[0, positions[m]] * vecs[m].to(read.dtype)).sum(-1))
    values = torch.cat(pieces)  # rows in ``order``
    top = int(layers.max())
    below = [rec.mlp_nodes[layer] for layer in range(min(top, n_layers))]
    grads = torch.autograd.grad(values, [*below, rec.embeds], grad_outputs=torch.eye(batch, dtype=values.dtype, device=dev),
                                is_grads_batched=True, retain_graph=True, allow_unused=True)
    cut = sources.n_pos - rec.input_ids.shape[0]
    if cut:  # a recording of a prefix: positions after it get no gradient
        grads = tuple(None if g is None else F.pad(g, (0, 0, 0, cut)) for g in grads)
    rows = sources.contract(list(grads[:-1]), grads[-1], batch)
    out = torch.empty_like(rows)
    out[order] = rows
    return out


def _decode(tokenizer: object | None, ids: Sequence[int]) -> list[str]:
    if tokenizer is None:
        return []
    return [tokenizer.decode([int(t)]) for t in ids]  # type: ignore[attr-defined]


Progress = Callable[[int, int], None]
"""``progress(rows_done, rows_total)`` after each backward batch; raising from it stops the attribution."""


def attribute(model: nn.Module, transcoders: Transcoders, input_ids: Tensor, *,
              options: AttributionOptions | None = None, tokenizer: object | None = None, model_id: str = "",
              model_revision: str | None = None, scan: str = "", progress: Progress | None = None) -> AttributionGraph:
    """The attribution graph of ``input_ids [pos]`` (unpruned; see ``prune``). The caller holds the model."""
    opts = options or AttributionOptions()
    report = progress or (lambda _done, _total: None)
    t0 = time.perf_counter()
    tcs: list[Transcoder | None] = layer_transcoders(model, transcoders)
    n_layers = len(tcs)
    input_ids = input_ids.reshape(-1).to(next(model.parameters()).device)
    rec = record_prompt(model, tcs, input_ids)
    feats = active_features(rec, tcs, zero_first_position=opts.zero_first_position)
    unembed = get_module(model, arch_for(model).unembed).weight.detach()  # [d_vocab d_model]
    targets = logit_targets(rec.last_logits, unembed, opts.max_n_logits, opts.desired_logit_prob, opts.target_tokens)
    sources = _Sources(feats, rec, n_layers)
    t_forward = time.perf_counter() - t0

    n_pos, n_active, n_logits = sources.n_pos, sources.n_active, int(targets.tokens.shape[0])
    logit_offset = sources.n_cols
    total_nodes = logit_offset + n_logits
    max_feats = n_active if opts.max_feature_nodes is None else min(opts.max_feature_nodes, n_active)
    edges = torch.zeros(max_feats + n_logits, total_nodes)
    row_to_node = torch.zeros(max_feats + n_logits, dtype=torch.long)
    bs = opts.batch_size

    for i in range(0, n_logits, bs):
        vec = targets.vectors[i:i + bs]
        b = vec.shape[0]
        edges[i:i + b, :logit_offset] = backward_rows(
            rec, sources, torch.full((b,), n_layers), torch.full((b,), n_pos - 1), vec).float().cpu()
        row_to_node[i:i + b] = torch.arange(i, i + b) + logit_offset
        report(i + b, n_logits + max_feats)
    t_logits = time.perf_counter() - t0 - t_forward

    st = n_logits
    feat_layer = feats.layer.cpu()  # scheduling happens on the CPU
    span = -(-n_pos // min(opts.position_buckets, n_pos))
    feat_bucket = feats.pos.cpu() // span  # targets of bucket b read positions < (b + 1) * span
    prefixes: dict[int, PromptRecord] = {}

    def recording(bucket: int) -> PromptRecord:
        end = min(n_pos, (bucket + 1) * span)
        if end >= n_pos:
            return rec
        if end not in prefixes:
            prefixes[end] = record_prompt(model, tcs, input_ids[:end])
        return prefixes[end]

    visited = torch.zeros(n_active, dtype=torch.bool)
    n_visited = 0
    while n_visited < max_feats:
        if max_feats == n_active:
            pending = torch.arange(n_active)
        else:
            infl = partial_influences(edges[:st], targets.probabilities, row_to_node[:st])
            rank = torch.argsort(infl[:n_active], descending=True)
            pending = rank[~visited[rank]][:min(opts.update_interval * bs, max_feats - n_visited)]
        # short recordings first within a batch's span, then few blocks per batch
        pending = pending[torch.argsort(feat_layer[pending], stable=True)]
        pending = pending[torch.argsort(feat_bucket[pending], stable=True)]
        for c in range(0, pending.shape[0], bs):
            idx = pending[c:c + bs]
            on = idx.to(feats.layer.device)
            rows = backward_rows(recording(int(feat_bucket[idx].max())), sources, feats.layer[on], feats.pos[on],
                                 feats.encoder[on])
            edges[st:st + idx.shape[0], :logit_offset] = rows.float().cpu()
            row_to_node[st:st + idx.shape[0]] = idx
            visited[idx] = True
            st += idx.shape[0]
            n_visited += idx.shape[0]
            report(st, n_logits + max_feats)
    t_features = time.perf_counter() - t0 - t_forward - t_logits

    selected = torch.where(visited)[0]
    if max_feats < n_active:
        edges = edges[:, torch.cat([selected, torch.arange(n_active, total_nodes)])]
    edges = edges[row_to_node.argsort()]
    n_nodes = edges.shape[1]
    adjacency = torch.zeros(n_nodes, n_nodes)
    adjacency[:max_feats] = edges[:max_feats]
    adjacency[n_nodes - n_logits:] = edges[max_feats:]

    ids = input_ids.tolist()
    tokens = targets.tokens.tolist()
    return AttributionGraph(
        input_ids=ids, n_layers=n_layers,
        active_features=torch.stack([feats.layer, feats.pos, feats.index], 1).cpu(),
        activation_values=feats.value.float().cpu(), selected_features=selected, adjacency=adjacency,
        logit_tokens=tokens, logit_probabilities=targets.probabilities.cpu(),
        prompt_tokens=_decode(tokenizer, ids), logit_strings=_decode(tokenizer, tokens),
        model_id=model_id, model_revision=model_revision, scan=scan,
        zero_first_position=opts.zero_first_position,
        extra={"options": {**asdict(opts), "target_tokens": list(opts.target_tokens)}, "n_active_features": n_active,
               "seconds": {"forward": round(t_forward, 3), "logit_rows": round(t_logits, 3),
                           "feature_rows": round(t_features, 3), "total": round(time.perf_counter() - t0, 3)}},
    )


def check_prompt_length(input_ids: Tensor, max_tokens: int) -> None:
    """Refuse prompts longer than ``max_tokens`` (the adjacency grows with positions x layers)."""
    if input_ids.numel() > max_tokens:
        raise Invalid(f"the prompt has {input_ids.numel()} tokens; attribution graphs take at most {max_tokens}")
