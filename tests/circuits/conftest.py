"""Hand-built transcoders on the tiny Llama, and an independent re-implementation of its forward pass
(from the weights, in plain torch) used as the reference linearised replacement model."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from interpretability_workbench.circuits.transcoder import Transcoder, TranscoderConfig

PROMPT_IDS = torch.tensor([0, 17, 42, 7, 99, 3, 250, 64])


def make_transcoder(lm, layer: int, *, d_tc: int = 24, arch: str = "topk", k: int = 4, skip: bool = False,
                    seed: int = 0) -> Transcoder:
    cfg = TranscoderConfig(d_in=lm.d_model, d_tc=d_tc, architecture=arch, k=k if arch == "topk" else None,
                           skip=skip, layer=layer, model_id=lm.model_id)
    tc = Transcoder(cfg)
    tc.reset_parameters(seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    # the random tiny model's MLP outputs are ~0.01: keep the transcoder's output on that scale
    with torch.no_grad():
        tc.W_dec.mul_(0.01)
        tc.b_enc.copy_(0.05 * torch.randn(d_tc, generator=g))
        tc.b_dec.copy_(0.002 * torch.randn(lm.d_model, generator=g))
        if arch == "jumprelu":
            tc.threshold.copy_(0.05 + 0.1 * torch.rand(d_tc, generator=g))
        if skip:
            tc.W_skip.copy_(0.002 * torch.randn(lm.d_model, lm.d_model, generator=g))  # type: ignore[union-attr]
    return tc


@pytest.fixture
def transcoders(tiny_lm) -> list[Transcoder]:
    """One per layer: topk, jumprelu with a skip term, topk with a skip term."""
    return [make_transcoder(tiny_lm, 0, seed=1),
            make_transcoder(tiny_lm, 1, arch="jumprelu", skip=True, seed=2),
            make_transcoder(tiny_lm, 2, skip=True, seed=3, k=6)]


# ---- reference implementation -------------------------------------------------------------------


class Clean(NamedTuple):
    logits: torch.Tensor  # [pos vocab]
    embeds: torch.Tensor  # [pos d]
    r1: list[torch.Tensor]  # per layer [pos 1]
    r2: list[torch.Tensor]
    rf: torch.Tensor
    patterns: list[torch.Tensor]  # per layer [heads q k]
    x_in: list[torch.Tensor]  # per layer [pos d]
    mlp_out: list[torch.Tensor]


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def hf_patterns(model, ids: torch.Tensor) -> list[torch.Tensor]:
    """Attention patterns from transformers' own eager attention (``output_attentions``)."""
    old = model.config._attn_implementation
    model.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = model(input_ids=ids[None], output_attentions=True, use_cache=False)
    finally:
        model.config._attn_implementation = old
    return [a[0] for a in out.attentions]


def _attn(block, h: torch.Tensor, pattern: torch.Tensor, cfg) -> torch.Tensor:
    """Attention output given its pattern: ``o_proj(pattern @ v)``, batched ``h [.. pos d]``."""
    n_heads, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.hidden_size // n_heads
    v = block.self_attn.v_proj(h).unflatten(-1, (n_kv, hd)).repeat_interleave(n_heads // n_kv, dim=-2)
    z = torch.einsum("hqk,...khd->...qhd", pattern, v).flatten(-2)
    return block.self_attn.o_proj(z)


def true_mlp(block, x: torch.Tensor) -> torch.Tensor:
    m = block.mlp
    return m.down_proj(F.silu(m.gate_proj(x)) * m.up_proj(x))


@torch.no_grad()
def reference_clean(model, ids: torch.Tensor) -> Clean:
    cfg = model.config
    pats = hf_patterns(model, ids)
    resid = model.model.embed_tokens.weight[ids]
    embeds = resid.clone()
    r1, r2, x_in, outs = [], [], [], []
    for layer, block in enumerate(model.model.layers):
        r1.append(_rms(resid, block.input_layernorm.variance_epsilon))
        h = block.input_layernorm.weight * resid * r1[-1]
        mid = resid + _attn(block, h, pats[layer], cfg)
        r2.append(_rms(mid, block.post_attention_layernorm.variance_epsilon))
        x = block.post_attention_layernorm.weight * mid * r2[-1]
        y = true_mlp(block, x)
        x_in.append(x)
        outs.append(y)
        resid = mid + y
    rf = _rms(resid, model.model.norm.variance_epsilon)
    logits = (model.model.norm.weight * resid * rf) @ model.lm_head.weight.T
    return Clean(logits, embeds, r1, r2, rf, pats, x_in, outs)


class Perturbation(NamedTuple):
    embed: torch.Tensor  # [S pos d] added to the embeddings
    mlp: torch.Tensor  # [S n_layers pos d] added to the MLP outputs


@torch.no_grad()
def reference_linearized(model, clean: Clean, transcoders, pert: Perturbation):
    """The local replacement model with everything frozen at ``clean``: patterns and norm scales fixed,
    each MLP output = its clean value + ``W_skip`` applied to the change of its input. Returns per batch
    row the MLP inputs ``[S n_layers pos d]`` and the final-norm output ``[S pos d]``."""
    cfg = model.config
    resid = clean.embeds + pert.embed
    xs = []
    for layer, block in enumerate(model.model.layers):
        h = block.input_layernorm.weight * resid * clean.r1[layer]
        mid = resid + _attn(block, h, clean.patterns[layer], cfg)
        x = block.post_attention_layernorm.weight * mid * clean.r2[layer]
        xs.append(x)
        y = clean.mlp_out[layer] + pert.mlp[:, layer]
        tc = transcoders[layer]
        if tc is not None and tc.W_skip is not None:
            y = y + (x - clean.x_in[layer]) @ tc.W_skip
        resid = mid + y
    return torch.stack(xs, 1), model.model.norm.weight * resid * clean.rf
