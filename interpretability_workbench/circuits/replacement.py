"""The replacement model: every MLP replaced by its transcoder (plus, optionally, its error term).

``record_prompt`` runs a prompt once through the *linearised* model (attention patterns and norm scales
detached, see ``linearize``) and keeps what attribution needs:

- the MLP inputs (what transcoders read; they carry the autograd graph back to the leaves below),
- per MLP an output node ``y = skip(x) + (mlp(x) - skip(x)).detach()``: its value is the true MLP output,
  its only gradient path is the transcoder's linear skip term (none without a skip connection), so the
  MLP is frozen apart from the skip, as in circuit-tracer,
- the token embeddings as a leaf, the final-norm output, and the real logits at the last position.

``active_features`` turns the recorded MLP inputs into feature nodes (activation, encoder and scaled decoder
vectors) and error nodes ``error = mlp_out - transcoder(mlp_in)``. ``replacement_logits`` runs the model with
MLPs replaced by transcoders: with the recorded errors added it reproduces the original logits.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from ..errors import Invalid
from ..model.hook_map import arch_for, get_layers, get_module
from ..model.hook_names import MLP_IN, parse_hook_name
from .linearize import FrozenStats, linearized
from .transcoder import Transcoder

Transcoders = Mapping[int, Transcoder] | Sequence["Transcoder | None"]


def layer_transcoders(model: nn.Module, transcoders: Transcoders) -> list[Transcoder | None]:
    """One transcoder (or None) per block of ``model``, checked against its widths and hooks."""
    layers = get_layers(model)
    n = len(layers)
    items = transcoders.items() if isinstance(transcoders, Mapping) else enumerate(transcoders)
    out: list[Transcoder | None] = [None] * n
    d_model = int(model.config.hidden_size)  # type: ignore[attr-defined]
    for layer, tc in items:
        if tc is None:
            continue
        if not 0 <= layer < n:
            raise Invalid(f"transcoder for layer {layer}: this model has layers 0..{n - 1}")
        if tc.cfg.layer != layer:
            raise Invalid(f"transcoder given for layer {layer} was trained on layer {tc.cfg.layer}")
        if tc.cfg.d_in != d_model or tc.cfg.d_out != d_model:
            raise Invalid(f"transcoder for layer {layer} maps {tc.cfg.d_in} -> {tc.cfg.d_out}, the model's "
                          f"d_model is {d_model}")
        if parse_hook_name(tc.cfg.input_hook).kind != MLP_IN or parse_hook_name(tc.cfg.output_hook).kind != "mlp_out":
            raise Invalid(f"transcoder for layer {layer} reads {tc.cfg.input_hook} and writes {tc.cfg.output_hook}; "
                          "circuit tracing needs MLP-input -> MLP-output transcoders")
        out[layer] = tc
    if not any(t is not None for t in out):
        raise Invalid("no transcoders given: give at least one (ideally one per layer)")
    return out


def _forward_kwargs(model: nn.Module) -> dict[str, Any]:
    params = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


class PromptRecord(NamedTuple):
    input_ids: Tensor
    """Prompt ``[pos]``."""
    last_logits: Tensor
    """Real logits at the last position ``[d_vocab]`` (detached)."""
    mlp_in: list[Tensor]
    """Per layer the MLP input ``[1 pos d_model]`` (grad-connected to ``embeds`` and ``mlp_nodes``)."""
    mlp_nodes: list[Tensor]
    """Per layer the MLP output node ``[1 pos d_model]`` (value = true MLP output; gradient only via skip)."""
    embeds: Tensor
    """Token embeddings ``[1 pos d_model]``, a leaf."""
    final_hidden: Tensor
    """Final-norm output ``[1 pos d_model]`` (what the unembedding reads)."""
    stats: FrozenStats
    """Attention patterns and norm scales of this forward."""


def record_prompt(model: nn.Module, transcoders: Sequence[Transcoder | None], input_ids: Tensor) -> PromptRecord:
    """One grad-enabled forward of ``input_ids [pos]`` through the linearised model (see module doc)."""
    if input_ids.ndim != 1 or input_ids.shape[0] < 1:
        raise Invalid("give one prompt as a 1-D tensor of token ids")
    spec = arch_for(model)
    layers = get_layers(model)
    mlp_in: list[Tensor | None] = [None] * len(layers)
    nodes: list[Tensor | None] = [None] * len(layers)
    got: dict[str, Tensor] = {}

    def embed_hook(_m: nn.Module, _a: Any, out: Tensor) -> Tensor:
        got["embeds"] = out.detach().requires_grad_(True)
        return got["embeds"]

    def mlp_hook(layer: int):
        tc = transcoders[layer]

        def fn(_m: nn.Module, args: tuple, out: Any) -> Tensor:
            x = args[0]
            y = out[0] if isinstance(out, tuple) else out
            mlp_in[layer] = x
            if tc is not None and tc.W_skip is not None:
                skip = tc.skip_term(x).to(y.dtype)
                node = skip + (y - skip).detach()
            else:
                node = y.detach().requires_grad_(True)
            nodes[layer] = node
            return node
        return fn

    def final_hook(_m: nn.Module, _a: Any, out: Any) -> None:
        got["final"] = out[0] if isinstance(out, tuple) else out

    with linearized(model, "detach") as stats, torch.enable_grad():
        handles = [get_module(model, spec.embed).register_forward_hook(embed_hook)]
        handles += [get_module(block, spec.mlp).register_forward_hook(mlp_hook(i)) for i, block in enumerate(layers)]
        handles.append(get_module(model, spec.final_norm).register_forward_hook(final_hook))
        try:
            out = model(input_ids=input_ids[None], use_cache=False, **_forward_kwargs(model))
        finally:
            for h in handles:
                h.remove()
    return PromptRecord(input_ids, out.logits[0, -1].detach().float(), mlp_in, nodes, got["embeds"],  # type: ignore[arg-type]
                        got["final"], stats)


class ActiveFeatures(NamedTuple):
    layer: Tensor
    """``[n_active]`` block of each active feature (sorted by layer, position, index)."""
    pos: Tensor
    """``[n_active]`` prompt position."""
    index: Tensor
    """``[n_active]`` feature index in its transcoder."""
    value: Tensor
    """``[n_active]`` activation."""
    encoder: Tensor
    """``[n_active d_model]`` encoder vectors (the direction a target feature reads)."""
    decoder: Tensor
    """``[n_active d_model]`` decoder vectors scaled by the activation (what a source feature writes)."""
    errors: Tensor
    """``[n_layers pos d_model]`` MLP output minus transcoder output (zero at skipped positions)."""


@torch.no_grad()
def active_features(rec: PromptRecord, transcoders: Sequence[Transcoder | None], *,
                    zero_first_position: bool = True) -> ActiveFeatures:
    """Feature and error nodes of a recorded prompt. With ``zero_first_position`` position 0 has neither
    features nor error (its MLP output becomes a constant), as circuit-tracer does for the BOS token."""
    n_pos = rec.input_ids.shape[0]
    d = rec.embeds.shape[-1]
    start = 1 if zero_first_position and n_pos > 1 else 0
    parts: list[tuple[Tensor, ...]] = []
    errors = rec.embeds.new_zeros(len(transcoders), n_pos, d)
    for layer, tc in enumerate(transcoders):
        x = rec.mlp_in[layer][0].detach()
        y = rec.mlp_nodes[layer][0].detach()
        if tc is None:
            errors[layer] = y  # the whole MLP output is unexplained
            continue
        xf = x.to(tc.W_enc.dtype)
        f = tc.encode(xf)  # [pos d_tc]
        f[:start] = 0
        errors[layer] = (y.to(f.dtype) - tc.decode(f, xf)).to(errors.dtype)
        pos, idx = f.nonzero(as_tuple=True)
        vals = f[pos, idx]
        parts.append((torch.full_like(pos, layer), pos, idx, vals, tc.W_enc[:, idx].T.to(errors.dtype),
                      (vals[:, None] * tc.W_dec[idx]).to(errors.dtype)))
    errors[:, :start] = 0
    if parts:
        cols = [torch.cat(c) for c in zip(*parts)]
    else:  # pragma: no cover - layer_transcoders refuses an empty set
        cols = [torch.zeros(0, dtype=torch.long)] * 3 + [torch.zeros(0), torch.zeros(0, d), torch.zeros(0, d)]
    return ActiveFeatures(*cols, errors)  # type: ignore[arg-type]


@torch.no_grad()
def replacement_logits(model: nn.Module, transcoders: Transcoders, input_ids: Tensor,
                       errors: Tensor | None = None, attention_mask: Tensor | None = None) -> Tensor:
    """Logits ``[batch pos d_vocab]`` of ``input_ids [batch pos]`` with each MLP that has a transcoder
    replaced by it; ``errors [n_layers pos d_model]`` (from ``active_features`` of the same prompt, with
    ``zero_first_position=False``) are added to the transcoder outputs, which restores the original model."""
    tcs = layer_transcoders(model, transcoders)
    spec = arch_for(model)

    def hook(layer: int, tc: Transcoder):
        def fn(_m: nn.Module, args: tuple, out: Any) -> Tensor:
            y = out[0] if isinstance(out, tuple) else out
            x = args[0].to(tc.W_enc.dtype)
            new = tc(x).y_hat
            if errors is not None:
                new = new + errors[layer].to(new.dtype)
            return new.to(y.dtype)
        return fn

    handles = [get_module(block, spec.mlp).register_forward_hook(hook(i, tc))
               for i, (block, tc) in enumerate(zip(get_layers(model), tcs)) if tc is not None]
    try:
        return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()


class ReplacementCE(NamedTuple):
    clean: float
    """Next-token cross-entropy of the model (nats per token)."""
    replaced: float
    """With every MLP that has a transcoder replaced by it (no error terms)."""
    ablated: float
    """With those MLPs' outputs zeroed (the baseline)."""
    recovered: float
    """``(ablated - replaced) / (ablated - clean)``: 1 = the transcoders lose nothing, 0 = no better than
    removing the MLPs."""


def _next_token_ce(logits: Tensor, input_ids: Tensor, attention_mask: Tensor | None) -> float:
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -lp.gather(-1, input_ids[:, 1:, None])[..., 0]  # [batch pos-1]
    mask = torch.ones_like(nll) if attention_mask is None else attention_mask[:, 1:].to(nll.dtype)
    return float((nll * mask).sum() / mask.sum().clamp_min(1))


@torch.no_grad()
def replacement_ce(model: nn.Module, transcoders: Transcoders, input_ids: Tensor,
                   attention_mask: Tensor | None = None) -> ReplacementCE:
    """CE loss recovered with every MLP replaced at once, on ``input_ids [batch pos]``."""
    if input_ids.ndim != 2 or input_ids.shape[1] < 2:
        raise Invalid("give token ids [batch pos] with at least 2 positions")
    tcs = layer_transcoders(model, transcoders)
    spec = arch_for(model)
    clean = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    replaced = replacement_logits(model, tcs, input_ids, attention_mask=attention_mask)

    def zero(_m: nn.Module, _a: tuple, out: Any) -> Tensor:
        return torch.zeros_like(out[0] if isinstance(out, tuple) else out)

    handles = [get_module(b, spec.mlp).register_forward_hook(zero)
               for b, tc in zip(get_layers(model), tcs) if tc is not None]
    try:
        ablated = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()
    ce = [_next_token_ce(x, input_ids, attention_mask) for x in (clean, replaced, ablated)]
    denom = ce[2] - ce[0]
    recovered = (ce[2] - ce[1]) / denom if abs(denom) > 1e-12 else float("nan")
    return ReplacementCE(ce[0], ce[1], ce[2], recovered)
