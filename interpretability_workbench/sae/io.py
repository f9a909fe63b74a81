"""Save/load SAEs as SAELens folders (v6 ``cfg.json`` + ``sae_weights.safetensors``); read pre-v6 cfg too
(how a foreign cfg is interpreted lives in ``saelens_cfg``). Safetensors only: nothing is ever unpickled."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..store.artifacts import atomic_dir
from .config import SAEConfig
from .model import SparseAutoencoder
from .saelens_cfg import SAEFormatError, SAELensSpec, apply_folds, read_saelens_cfg

__all__ = ["CFG_NAME", "SPARSITY_NAME", "WEIGHTS_NAME", "SAEFormatError", "load_sae", "save_sae", "to_saelens_cfg"]

CFG_NAME = "cfg.json"
WEIGHTS_NAME = "sae_weights.safetensors"
SPARSITY_NAME = "sparsity.safetensors"
IWB_CFG_KEY = "iwb"  # our own fields, nested so SAELens ignores them


def to_saelens_cfg(cfg: SAEConfig) -> dict[str, Any]:
    arch = "jumprelu" if cfg.architecture == "batchtopk" else cfg.architecture
    out: dict[str, Any] = {
        "d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": cfg.dtype, "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none",  # the scale is folded into the saved weights
        "reshape_activations": "none",
        "architecture": arch,
        "metadata": {
            "model_name": cfg.model_id, "hook_name": cfg.hook_name, "model_class_name": cfg.model_class_name,
            "hook_head_index": None, "model_from_pretrained_kwargs": {}, "context_size": cfg.context_size,
            "dataset_path": cfg.dataset_path, "prepend_bos": True, "seqpos_slice": [1, None] if cfg.exclude_first_position else [None],
            "sae_lens_training_version": None, "model_revision": cfg.model_revision,
        },
        IWB_CFG_KEY: cfg.to_dict(),
    }
    if arch == "topk":
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = False
    return out


def _folded_weights(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    """Weights with input normalisation folded in, so plain SAELens encode/decode match ours:
    act((x s - b) W + c) = act((x - b/s)(s W) + c); decode (f W_d + b)/s = f (W_d/s) + b/s."""
    s = sae.scale
    b_dec = sae.b_dec.detach() / s
    w = {
        "W_enc": (sae.W_enc.detach() * s), "b_enc": sae.b_enc.detach(),
        "W_dec": sae.W_dec.detach() / s, "b_dec": b_dec,
    }
    if not sae.cfg.apply_b_dec_to_input:
        w["b_dec"] = b_dec
    if sae.cfg.architecture in ("jumprelu", "batchtopk"):
        w["threshold"] = sae.threshold.detach()
    return {k: v.to(torch.float32).contiguous().cpu() for k, v in w.items()}


def save_sae(sae: SparseAutoencoder, folder: str | Path, sparsity: torch.Tensor | None = None) -> Path:
    """Write a SAELens v6 folder atomically."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        save_file(_folded_weights(sae), str(tmp / WEIGHTS_NAME))
        (tmp / CFG_NAME).write_text(json.dumps(to_saelens_cfg(sae.cfg), indent=2))
        if sparsity is not None:
            save_file({"sparsity": sparsity.float().contiguous().cpu()}, str(tmp / SPARSITY_NAME))
    return folder


def _read_cfg(raw: dict[str, Any], cfg_overrides: Mapping[str, Any] | None,
              norm_scaling_factor: float | None) -> SAELensSpec:
    if IWB_CFG_KEY in raw and not cfg_overrides:  # our own export: full config, weights already folded
        d = dict(raw[IWB_CFG_KEY])
        d.update(normalize_activations="none", norm_scale=1.0)
        return SAELensSpec(SAEConfig.from_dict(d), False, None)
    return read_saelens_cfg(raw, cfg_overrides, norm_scaling_factor)


def _check_weights(w: dict[str, torch.Tensor], cfg: SAEConfig) -> None:
    expect = {"W_enc": (cfg.d_in, cfg.d_sae), "W_dec": (cfg.d_sae, cfg.d_in), "b_enc": (cfg.d_sae,), "b_dec": (cfg.d_in,)}
    for key, shape in expect.items():
        if key not in w:
            raise SAEFormatError(f"{WEIGHTS_NAME} lacks {key}")
        if tuple(w[key].shape) != shape:
            raise SAEFormatError(f"{key} has shape {tuple(w[key].shape)}, cfg.json says {shape}")
    if cfg.architecture in ("jumprelu", "batchtopk"):
        if "threshold" not in w:
            raise SAEFormatError(f"a {cfg.architecture} SAE needs a per-latent threshold in {WEIGHTS_NAME}")
        if w["threshold"].numel() not in (1, cfg.d_sae):
            raise SAEFormatError(f"threshold has shape {tuple(w['threshold'].shape)}, expected ({cfg.d_sae},)")
    scale = w.get("scaling_factor", w.get("finetuning_scaling_factor"))
    if scale is not None and not torch.equal(scale.float(), torch.ones_like(scale, dtype=torch.float32)):
        raise SAEFormatError("not supported yet: a finetuning scaling factor on the latents (scaling_factor != 1)")
    for key in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
        if key in w and not bool(torch.isfinite(w[key]).all()):
            raise SAEFormatError(f"{key} holds NaN or infinite values")


def load_sae(folder: str | Path, device: str | torch.device = "cpu", *,
             cfg_overrides: Mapping[str, Any] | None = None,
             norm_scaling_factor: float | None = None) -> SparseAutoencoder:
    """Load a SAELens folder (ours or SAELens's, v6 or pre-v6) into float32 weights on ``device``.

    ``cfg_overrides`` are applied over cfg.json (and its metadata) as SAELens's registry does;
    ``norm_scaling_factor`` is the dataset constant for ``normalize_activations='expected_average_only_in'``.
    Normalisation and decoder-norm rescaling are folded into the weights (see ``saelens_cfg``)."""
    folder = Path(folder)
    cfg_path, w_path = folder / CFG_NAME, folder / WEIGHTS_NAME
    if not cfg_path.is_file() or not w_path.is_file():
        raise SAEFormatError(f"{folder} is not an SAE folder: it needs {CFG_NAME} and {WEIGHTS_NAME}")
    try:
        raw = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SAEFormatError(f"{CFG_NAME} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise SAEFormatError(f"{CFG_NAME} must hold a JSON object")
    try:
        spec = _read_cfg(raw, cfg_overrides, norm_scaling_factor)
    except SAEFormatError:
        raise
    except (TypeError, ValueError) as e:
        raise SAEFormatError(f"{CFG_NAME}: {e}") from None
    cfg = spec.cfg
    try:
        w = load_file(str(w_path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
        raise SAEFormatError(f"{WEIGHTS_NAME} is not a valid safetensors file: {e}") from None
    _check_weights(w, cfg)
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        for key in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(sae, key).copy_(w[key].float())
        if "threshold" in w:
            sae.threshold.copy_(w["threshold"].float().reshape(-1).expand(cfg.d_sae))
    apply_folds(sae, spec)
    return sae.to(device)
