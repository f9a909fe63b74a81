"""Per-architecture map from canonical hook names to Hugging Face modules.

The only module that knows HF module paths. Families: Llama-like (Llama, Mistral, Qwen2, Gemma, ...:
``model.layers``), GPT-2 (``transformer.h``) and GPT-NeoX/Pythia (``gpt_neox.layers``).

``hook_attn_out`` / ``hook_mlp_out`` are the outputs of the attention and MLP submodules. In models that
normalise those outputs before adding them to the residual stream (Gemma 2/3, OLMo 2) they are the
pre-norm outputs, so ``resid_post = resid_pre + attn_out + mlp_out`` holds only for the other families.

``blocks.L.ln2.hook_normalized`` (kind ``mlp_in``, what a transcoder reads) is the MLP submodule's input:
the output of ``post_attention_layernorm`` (Llama family, GPT-NeoX) or ``ln_2`` (GPT-2), and of
``pre_feedforward_layernorm`` in Gemma 2/3. Hooking the MLP's input rather than the norm's output gives
the right tensor in every family, including NeoX's parallel residual.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from torch import nn

from .hook_names import parse_hook_name


class UnsupportedModelError(ValueError):
    """The model's architecture has no hook map."""


@dataclass(frozen=True)
class ArchSpec:
    """Where things live in one architecture family (paths relative to the CausalLM)."""

    family: str
    """Short family name: llama | gpt2 | neox."""
    layers: str
    """Path of the ModuleList of decoder blocks."""
    attn: str
    """Attention submodule, relative to a block."""
    mlp: str
    """MLP submodule, relative to a block."""
    attn_out_proj: str
    """Linear (or Conv1D) that writes attention output into the residual stream, relative to a block."""
    mlp_out_proj: str
    """Linear (or Conv1D) that writes MLP output into the residual stream, relative to a block."""
    embed: str
    """Token embedding."""
    final_norm: str
    """Final layer norm before the unembedding."""
    unembed: str
    """Unembedding (lm_head)."""


_LLAMA = ArchSpec("llama", "model.layers", "self_attn", "mlp", "self_attn.o_proj", "mlp.down_proj",
                  "model.embed_tokens", "model.norm", "lm_head")
_GPT2 = ArchSpec("gpt2", "transformer.h", "attn", "mlp", "attn.c_proj", "mlp.c_proj",
                 "transformer.wte", "transformer.ln_f", "lm_head")
_NEOX = ArchSpec("neox", "gpt_neox.layers", "attention", "mlp", "attention.dense", "mlp.dense_4h_to_h",
                 "gpt_neox.embed_in", "gpt_neox.final_layer_norm", "lm_head")

ARCHS: dict[str, ArchSpec] = {
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "qwen3": _LLAMA, "gemma": _LLAMA,
    "gemma2": _LLAMA, "phi3": _LLAMA, "olmo": _LLAMA, "olmo2": _LLAMA, "granite": _LLAMA,
    "smollm3": _LLAMA,
    "gpt2": _GPT2,
    "gpt_neox": _NEOX,
}


class HookPoint(NamedTuple):
    module: nn.Module
    path: str
    """Dotted module path inside the CausalLM."""
    io: Literal["input", "output"]
    """Whether the activation is the module's (first) input or its (first) output."""
    layer: int


def arch_for(model: nn.Module) -> ArchSpec:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    spec = ARCHS.get(str(model_type))
    if spec is None:
        raise UnsupportedModelError(
            f"architecture {model_type!r} is not supported; supported model types: {', '.join(sorted(ARCHS))}"
        )
    return spec


def get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def get_layers(model: nn.Module) -> nn.ModuleList:
    return get_module(model, arch_for(model).layers)  # type: ignore[return-value]


def n_layers(model: nn.Module) -> int:
    return len(get_layers(model))


def resolve(model: nn.Module, name: str) -> HookPoint:
    """Canonical hook name -> (module, path, input|output, layer)."""
    hn = parse_hook_name(name)
    spec = arch_for(model)
    count = n_layers(model)
    if hn.layer >= count:
        raise ValueError(f"layer {hn.layer} is out of range: this model has layers 0..{count - 1}")
    block = f"{spec.layers}.{hn.layer}"
    if hn.kind == "resid_pre":
        path, io = block, "input"
    elif hn.kind == "resid_post":
        path, io = block, "output"
    elif hn.kind == "mlp_out":
        path, io = f"{block}.{spec.mlp}", "output"
    elif hn.kind == "mlp_in":
        path, io = f"{block}.{spec.mlp}", "input"
    else:  # attn_out
        path, io = f"{block}.{spec.attn}", "output"
    return HookPoint(get_module(model, path), path, io, hn.layer)  # type: ignore[arg-type]


def residual_writers(model: nn.Module, layer: int) -> list[str]:
    """Paths of the modules in block ``layer`` that add into the residual stream (attn and MLP out)."""
    spec = arch_for(model)
    block = f"{spec.layers}.{layer}"
    return [f"{block}.{spec.attn_out_proj}", f"{block}.{spec.mlp_out_proj}"]
