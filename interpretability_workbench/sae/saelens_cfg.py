"""Read a SAELens ``cfg.json`` (v6, or pre-v6 with its metadata at the top level) into an ``SAEConfig``,
plus the folds that make our plain encode/decode equal SAELens's.

Honoured exactly (folded into the weights): ``apply_b_dec_to_input`` true/false (native),
``rescale_acts_by_decoder_norm`` (TopK), ``normalize_activations='expected_average_only_in'`` given its
dataset constant. Refused with a message that says what to do: input-dependent normalisations
(``constant_norm_rescale``, ``layer_norm``), ``covariance_whitening`` (statistics kept outside the folder),
architectures we do not run (gated, transcoders, ...), attention ``hook_z`` SAEs, finetuning scaling factors.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from .config import SAEConfig
from .model import SparseAutoencoder

SUPPORTED_ARCHITECTURES = ("standard", "topk", "jumprelu", "batchtopk")
# keys renamed in SAELens 6.0 (pre-v6 cfg files still use the old names)
_PRE_V6_RENAMES = {"hook_point": "hook_name", "hook_point_head_index": "hook_head_index",
                   "activation_fn_str": "activation_fn"}
# cfg fields worth keeping in SAEConfig.extra["saelens"] (provenance and caveats)
_KEPT_KEYS = ("neuronpedia_id", "sae_lens_version", "sae_lens_training_version", "training_architecture",
              "model_from_pretrained_kwargs", "prepend_bos", "seqpos_slice")
_UNSUPPORTED_ARCH = {
    "gated": "gated SAEs (a separate gate path)",
    "abstopk": "AbsTopK SAEs (signed activations)",
    "matching_pursuit": "matching-pursuit SAEs (iterative encoder)",
    "temporal": "temporal SAEs (attention over previous tokens)",
    "transcoder": "transcoders (read one hook, write another)",
    "skip_transcoder": "skip transcoders",
    "jumprelu_transcoder": "JumpReLU transcoders",
    "jumprelu_skip_transcoder": "JumpReLU skip transcoders",
}


class SAEFormatError(ValueError):
    """A folder is not a loadable SAE; the message says why."""


class SAELensSpec(NamedTuple):
    cfg: SAEConfig
    """Our config (normalisation 'none': the folds below are applied to the weights)."""
    rescale_acts_by_decoder_norm: bool
    """TopK pre-activations scaled by decoder row norms (folded into W_enc, b_enc, W_dec)."""
    norm_scaling_factor: float | None
    """Input scale for 'expected_average_only_in' (folded into W_enc, W_dec, b_dec)."""


def _flatten(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Top-level keys and ``metadata`` in one dict (pre-v6 names renamed), then ``overrides`` on top."""
    meta = raw.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise SAEFormatError("cfg.json 'metadata' must be an object")
    flat = {_PRE_V6_RENAMES.get(k, k): v for k, v in raw.items() if k != "metadata"}
    flat.update({_PRE_V6_RENAMES.get(k, k): v for k, v in meta.items()})
    flat.update(overrides or {})
    return flat


def _architecture(flat: Mapping[str, Any]) -> tuple[str, int | None]:
    arch = str(flat.get("architecture") or "standard")
    act_fn = flat.get("activation_fn")
    act_kwargs = flat.get("activation_fn_kwargs") or {}
    k = flat.get("k")
    if act_fn == "topk" and act_kwargs.get("k") is not None:  # pre-v6 TopK (SAELens converts it the same way)
        arch, k = "topk", act_kwargs["k"]
    if arch in _UNSUPPORTED_ARCH:
        raise SAEFormatError(
            f"not supported yet: {_UNSUPPORTED_ARCH[arch]} (architecture {arch!r}); the workbench imports "
            f"{', '.join(SUPPORTED_ARCHITECTURES[:3])} (BatchTopK SAEs are saved by SAELens as jumprelu)")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise SAEFormatError(f"not supported yet: architecture {arch!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
    if act_fn not in (None, "relu", "topk"):
        raise SAEFormatError(f"not supported yet: activation_fn {act_fn!r} (only ReLU-based SAEs import)")
    if arch == "topk":
        if k is None:
            raise SAEFormatError("a topk cfg.json needs k (or activation_fn_kwargs.k)")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or int(k) != k:
            raise SAEFormatError(f"k must be an integer, got {k!r}")
    return arch, (int(k) if arch in ("topk", "batchtopk") and k is not None else None)


def _normalisation(value: Any, factor: float | None) -> float | None:
    """The input scale to fold in (None: no normalisation). Refuses what cannot be folded exactly."""
    if value in (None, False, "none"):
        return None
    if value is True or value == "expected_average_only_in":
        if factor is None:
            raise SAEFormatError(
                "normalize_activations='expected_average_only_in': inputs were scaled by a dataset constant "
                "(sqrt(d_in) / mean activation norm) that SAELens keeps outside the folder. Give the SAE's "
                "norm_scaling_factor (SAELens's registry lists it per SAE) so it is folded into the weights, or "
                "fold it with sae_lens's SAE.fold_activation_norm_scaling_factor(factor) and save the SAE again")
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
            raise SAEFormatError(f"norm_scaling_factor must be a positive number, got {factor!r}")
        return float(factor)
    if value in ("constant_norm_rescale", "layer_norm"):
        raise SAEFormatError(
            f"not supported yet: normalize_activations={value!r} rescales every token by its own norm at run "
            "time; that depends on the input and cannot be folded into fixed weights (feature steering and the "
            "PEFT export need a fixed affine SAE). Use an SAE trained with 'none' or 'expected_average_only_in'")
    if value == "covariance_whitening":
        raise SAEFormatError(
            "normalize_activations='covariance_whitening' needs whitening statistics kept outside the folder; "
            "fold them with sae_lens's SAE.fold_activation_whitening(mean, M, M_inv) and save the SAE again")
    raise SAEFormatError(f"unknown normalize_activations {value!r}")


def read_saelens_cfg(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                     norm_scaling_factor: float | None = None) -> SAELensSpec:
    """Interpret a SAELens cfg.json (after ``overrides``, e.g. a registry's config_overrides)."""
    flat = _flatten(raw, overrides)
    arch, k = _architecture(flat)
    hook = str(flat.get("hook_name") or "")
    if flat.get("reshape_activations") == "hook_z" or hook.endswith("hook_z"):
        raise SAEFormatError(f"not supported yet: attention hook_z SAEs ({hook or 'reshape_activations=hook_z'}); "
                             "the workbench hooks blocks.N.hook_{resid_pre,resid_post,mlp_out,attn_out}")
    if flat.get("hook_head_index") is not None:
        raise SAEFormatError("not supported yet: per-head SAEs (hook_head_index is set)")
    factor = _normalisation(flat.get("normalize_activations"), norm_scaling_factor)
    rescale = arch == "topk" and bool(flat.get("rescale_acts_by_decoder_norm", False))  # a TopK field in SAELens
    try:
        d_in, d_sae = int(flat["d_in"]), int(flat["d_sae"])
    except (KeyError, TypeError, ValueError):
        raise SAEFormatError("cfg.json needs integer d_in and d_sae") from None
    kept = {key: flat[key] for key in _KEPT_KEYS if flat.get(key) not in (None, {}, [])}
    folded = {key: val for key, val in (("rescale_acts_by_decoder_norm", rescale), ("norm_scaling_factor", factor))
              if val}
    cfg = SAEConfig(
        d_in=d_in, d_sae=d_sae, architecture=arch, k=k,
        hook_name=hook, model_id=str(flat.get("model_name") or ""),
        model_revision=flat.get("model_revision"), model_class_name=str(flat.get("model_class_name") or ""),
        context_size=int(flat.get("context_size") or 128), dataset_path=str(flat.get("dataset_path") or ""),
        apply_b_dec_to_input=bool(flat.get("apply_b_dec_to_input", True)),
        extra={key: val for key, val in (("saelens", kept), ("folded", folded)) if val},
    )
    return SAELensSpec(cfg, rescale, factor)


@torch.no_grad()
def apply_folds(sae: SparseAutoencoder, spec: SAELensSpec) -> None:
    """Fold decoder-norm rescaling and the input scale into the weights (float64, then back).

    TopK with rescale: SAELens encodes ``topk(pre * n)`` and decodes ``(f / n) @ W_dec``, n the decoder row
    norms: so ``W_enc * n``, ``b_enc * n``, ``W_dec / n`` (a zero row stays zero). Input scale s (SAELens's
    own fold): ``W_enc * s``, ``W_dec / s``, ``b_dec / s``; the pre-activations (and thresholds) are unchanged.
    """
    if not spec.rescale_acts_by_decoder_norm and spec.norm_scaling_factor is None:
        return
    W_enc, b_enc, W_dec, b_dec = (t.detach().double() for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    if spec.rescale_acts_by_decoder_norm:
        n = W_dec.norm(dim=1)  # [d_sae]
        W_enc, b_enc = W_enc * n, b_enc * n
        W_dec = torch.where(n[:, None] > 0, W_dec / n.clamp_min(1e-300)[:, None], torch.zeros_like(W_dec))
    if spec.norm_scaling_factor is not None:
        s = spec.norm_scaling_factor
        W_enc, W_dec, b_dec = W_enc * s, W_dec / s, b_dec / s
    for name, value in (("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)):
        getattr(sae, name).copy_(value.to(getattr(sae, name).dtype))
