"""Feature edits as exact low-rank weight deltas on the modules that write into the residual stream.

A delta on a module with input ``x`` adds ``scaling · (x Aᵀ Bᵀ + bias)`` to its output (an embedding
adds ``scaling · (A[:, ids]ᵀ Bᵀ)``), PEFT's LoRA layout: ``A [r in]`` (``[r vocab]`` for embeddings),
``B [out r]``, optional ``bias [out]`` (PEFT's ``lora_B.bias``). The strength of a patch lives only in
``scaling``, so a slider move never recomputes a delta.

What is exact (for families whose residual writers add straight into the stream: llama, mistral, qwen2,
gpt2, gpt_neox — not families with post-block norms such as gemma2/olmo2, refused below):

* ``ablate`` (features f₁..f_n, orthonormal basis Q ``[d_model r]`` of their decoder rows, strength t):
  every module that writes into the residual stream up to and including block L (the token embedding,
  GPT-2's position embedding, and the attention and MLP out projections of blocks 0..L) gets
  ``ΔW = −t·Q Qᵀ W`` (and ``Δb = −t·Q Qᵀ b`` for biased writers). ``resid_post`` of block L is the sum of
  what those modules write, so with t = 1 its component along span(Q) is exactly zero on every token;
  blocks after L are untouched and may write along Q again.
* ``scale`` (factor s): the same writers get ``ΔW = (s−1)·Q Qᵀ W``, so the component along span(Q) of
  every write into the stream up to block L — hence of ``resid_post`` L — is multiplied by s.
* ``steer`` (α): ``lora_B.bias = Σ_f W_dec[f]`` (in residual units) on block L's MLP out projection with
  ``scaling = α``: exactly ``α·Σ W_dec[f]`` is added to ``resid_post`` L at every position.

A group of any size is one patch: n features give r = dim span(decoder rows) ≤ min(n, d_model) orthonormal
directions and one rank-r delta per writer. Nothing in the algebra, the wrapper or PEFT's LoRA layout bounds
r, so no group is split (a delta costs r·(in + out) multiply-adds per token, under the layer's own in·out
while r < in·out / (in + out), e.g. 288 for a 576×576 projection).

Clamp is input-dependent (an SAE splice), not a weight delta: see ``inject.ClampBlock``.

Dtype and device: deltas are built in float32 on the SAE's device (the model's main device), reading each
module's weight where it is stored (offloaded weights included) in row chunks, so a bf16 model never
needs a whole float32 copy of its embedding. ``inject.DeltaLayer`` keeps them in float32 on the device
its module executes on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import Invalid
from ..model.hook_map import arch_for, residual_writers
from ..model.hook_names import parse_hook_name
from ..model.placement import module_tensor
from ..sae.model import SparseAutoencoder

POST_NORM_FAMILIES = {"gemma2", "gemma3", "gemma3_text", "olmo2"}
"""model types whose blocks normalise attention/MLP outputs before adding them to the stream."""


@dataclass
class ModuleDelta:
    """A low-rank delta on one module (unit strength; the patch's strength sets ``scaling``)."""

    path: str
    """Dotted module path inside the CausalLM (e.g. ``model.layers.3.mlp.down_proj``)."""
    kind: Literal["linear", "embedding"]
    A: Tensor
    """``[r in]`` (linear: Linear or GPT-2 Conv1D) or ``[r vocab]`` (embedding)."""
    B: Tensor
    """``[out r]``."""
    bias: Tensor | None = None
    """``[out]`` added with the same scaling (PEFT ``lora_B.bias``); linear only."""

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    @property
    def low_rank_is_zero(self) -> bool:
        return not bool(self.A.abs().any()) or not bool(self.B.abs().any())


def scaling_for(mode: str, strength: float) -> float:
    """The multiplier a patch of ``mode`` at ``strength`` puts on its unit deltas."""
    if mode == "ablate":
        return -float(strength)
    if mode == "scale":
        return float(strength) - 1.0
    return float(strength)  # steer (α), adapter (multiplier)


def is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def effective_weight(module: nn.Module) -> Tensor:
    """The module's weight as ``[out in]`` (Linear, GPT-2 Conv1D) or ``[vocab d]`` (Embedding), in its own
    dtype, where it is stored (an offloaded module's weight is read from its offload map)."""
    w = module_tensor(module, "weight")
    return w.T if is_conv1d(module) else w


ROW_CHUNK = 16384
"""Weight rows upcast to float32 at a time while building a delta."""


def _rows_times(W: Tensor, Q: Tensor) -> Tensor:
    """``W [n d] @ Q [d r]`` in float32 on ``Q``'s device, ``W`` upcast ``ROW_CHUNK`` rows at a time."""
    out = torch.empty(W.shape[0], Q.shape[1], device=Q.device)
    for lo in range(0, W.shape[0], ROW_CHUNK):
        out[lo: lo + ROW_CHUNK] = W[lo: lo + ROW_CHUNK].to(Q.device, torch.float32) @ Q
    return out


def module_kind(module: nn.Module) -> Literal["linear", "embedding"]:
    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, nn.Linear) or is_conv1d(module):
        return "linear"
    raise Invalid(f"cannot patch a {type(module).__name__}: only Linear, Conv1D and Embedding layers take deltas")


def base_of(module: nn.Module) -> nn.Module:
    """Unwrap a workbench wrapper to the original layer."""
    return getattr(module, "base_layer", module) if hasattr(module, "entries") else module


def embedding_writers(model: nn.Module) -> list[str]:
    """Embeddings that add into the residual stream: the token embedding (and GPT-2's ``wpe``)."""
    spec = arch_for(model)
    paths = [spec.embed]
    parent_path = spec.embed.rpartition(".")[0]
    parent = model.get_submodule(parent_path)
    if isinstance(getattr(parent, "wpe", None), nn.Embedding):  # learned absolute positions (GPT-2)
        paths.append(f"{parent_path}.wpe")
    return paths


def check_family(model: nn.Module) -> None:
    mt = str(getattr(getattr(model, "config", None), "model_type", ""))
    if mt in POST_NORM_FAMILIES:
        raise Invalid(f"{mt} normalises block outputs before the residual add, so weight-delta patches are "
                      "not exact there; use a clamp patch instead")


def decoder_directions(sae: SparseAutoencoder, features: list[int]) -> Tensor:
    """Decoder rows of ``features`` in residual units ``[n d_model]`` (float32)."""
    if max(features) >= sae.cfg.d_sae:
        raise Invalid(f"feature {max(features)} is out of range: this SAE has features 0..{sae.cfg.d_sae - 1}")
    return sae.W_dec.detach()[features].float() / sae.scale


def orthonormal_basis(dirs: Tensor) -> Tensor:
    """Orthonormal basis ``Q [d_model r]`` of the span of the rows of ``dirs [n d_model]``."""
    q, r = torch.linalg.qr(dirs.double().T)
    diag = r.diagonal().abs()
    keep = diag > 1e-6 * max(float(diag.max()), 1e-12)
    if not bool(keep.any()):
        raise Invalid("the features' decoder directions are all zero; nothing to project")
    return q[:, keep].float()


def _projection_delta(model: nn.Module, path: str, Q: Tensor) -> ModuleDelta:
    """Float32 on ``Q``'s device."""
    module = base_of(model.get_submodule(path))
    kind = module_kind(module)
    W = effective_weight(module)
    if kind == "embedding":  # rows are what gets written: E' = E (I + c QQᵀ)
        return ModuleDelta(path, kind, A=_rows_times(W, Q).T.contiguous(), B=Q.clone())
    bias = getattr(module, "bias", None)
    b = None if bias is None else (Q @ (Q.T @ module_tensor(module, "bias").to(Q.device, torch.float32)))
    # Qᵀ W = (Wᵀ Q)ᵀ: the rows of Wᵀ are W's columns
    return ModuleDelta(path, kind, A=_rows_times(W.T, Q).T.contiguous(), B=Q.clone(), bias=b)


def _writers_for(model: nn.Module, hook: str) -> tuple[list[str], str | None]:
    """(modules whose writes make up the hook's activation, the module a steer bias goes on)."""
    hn = parse_hook_name(hook)
    L, kind = hn.layer, hn.kind
    attn_out, mlp_out = residual_writers(model, L)
    if kind in ("mlp_out", "mlp_in"):  # the MLP out projection's output (a transcoder's features write there)
        return [mlp_out], mlp_out
    if kind == "attn_out":
        return [attn_out], attn_out
    last = L if kind == "resid_post" else L - 1  # resid_pre L = what embeddings and blocks 0..L-1 wrote
    paths = embedding_writers(model) + [p for lyr in range(last + 1) for p in residual_writers(model, lyr)]
    return paths, (residual_writers(model, last)[-1] if last >= 0 else None)


def feature_deltas(model: nn.Module, sae: SparseAutoencoder, features: list[int], mode: str) -> list[ModuleDelta]:
    """Unit-strength deltas of an ablate / scale / steer patch (see the module docstring). For SAEs on
    ``resid_pre`` L the writers are those of blocks 0..L-1; on ``mlp_out``/``attn_out`` L only that projection."""
    check_family(model)
    dirs = decoder_directions(sae, features)  # [n d_model]
    paths, steer_at = _writers_for(model, sae.cfg.hook_name)
    if mode == "steer":
        if steer_at is None:
            raise Invalid("steering blocks.0.hook_resid_pre would need a bias on the embedding; use an SAE at "
                          "another hook")
        module = base_of(model.get_submodule(steer_at))
        module_kind(module)
        d_in = effective_weight(module).shape[1]
        dev = dirs.device
        return [ModuleDelta(steer_at, "linear", A=torch.zeros(1, d_in, device=dev),
                            B=torch.zeros(dirs.shape[1], 1, device=dev), bias=dirs.sum(0))]
    if mode not in ("ablate", "scale"):
        raise Invalid(f"{mode} is not a weight-delta mode")
    Q = orthonormal_basis(dirs)  # [d_model r]
    return [_projection_delta(model, p, Q) for p in paths]


def layer_of_path(model: nn.Module, path: str) -> int:
    """Block index a module path lives in (0 for embeddings and anything before the blocks)."""
    prefix = arch_for(model).layers + "."
    if path.startswith(prefix):
        return int(path[len(prefix):].split(".")[0])
    return 0
