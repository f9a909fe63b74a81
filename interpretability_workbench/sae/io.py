"""Save/load SAEs as SAELens folders (v6 ``cfg.json`` + ``sae_weights.safetensors``); read pre-v6 cfg too.
Safetensors only: nothing is ever unpickled."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..store.artifacts import atomic_dir
from .config import SAEConfig
from .model import SparseAutoencoder

CFG_NAME = "cfg.json"
WEIGHTS_NAME = "sae_weights.safetensors"
SPARSITY_NAME = "sparsity.safetensors"
IWB_CFG_KEY = "iwb"  # our own fields, nested so SAELens ignores them


class SAEFormatError(ValueError):
    """A folder is not a loadable SAE; the message says why."""


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


def _cfg_from_saelens(raw: dict[str, Any]) -> SAEConfig:
    if IWB_CFG_KEY in raw:  # our own export: full config, but weights are already folded
        d = dict(raw[IWB_CFG_KEY])
        d.update(normalize_activations="none", norm_scale=1.0)
        return SAEConfig.from_dict(d)
    meta = raw.get("metadata") or {}
    # pre-v6 cfg: metadata fields at the top level
    get = lambda k, default=None: meta.get(k, raw.get(k, default))  # noqa: E731
    arch = raw.get("architecture", "standard")
    if arch == "gated":
        raise SAEFormatError("gated SAEs are not supported; export as standard, topk or jumprelu")
    if raw.get("normalize_activations", "none") not in ("none", None):
        raise SAEFormatError(
            f"normalize_activations={raw['normalize_activations']!r} needs a dataset statistic SAELens keeps "
            "outside the folder; fold the scale into the weights before importing")
    try:
        d_in, d_sae = int(raw["d_in"]), int(raw["d_sae"])
    except (KeyError, TypeError, ValueError):
        raise SAEFormatError("cfg.json needs integer d_in and d_sae") from None
    k = raw.get("k")
    if arch == "topk" and not k:
        act_kwargs = raw.get("activation_fn_kwargs") or {}
        k = act_kwargs.get("k")
    return SAEConfig(
        d_in=d_in, d_sae=d_sae, architecture=arch, k=int(k) if k else None,
        hook_name=str(get("hook_name", "")), model_id=str(get("model_name", "")),
        model_revision=get("model_revision"), model_class_name=str(get("model_class_name", "") or ""),
        context_size=int(get("context_size", 128) or 128), dataset_path=str(get("dataset_path", "") or ""),
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
    )


def load_sae(folder: str | Path, device: str | torch.device = "cpu") -> SparseAutoencoder:
    folder = Path(folder)
    cfg_path, w_path = folder / CFG_NAME, folder / WEIGHTS_NAME
    if not cfg_path.is_file() or not w_path.is_file():
        raise SAEFormatError(f"{folder} is not an SAE folder: it needs {CFG_NAME} and {WEIGHTS_NAME}")
    try:
        raw = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise SAEFormatError(f"{CFG_NAME} is not valid JSON: {e.msg}") from None
    try:
        cfg = _cfg_from_saelens(raw)
    except (TypeError, ValueError) as e:
        raise SAEFormatError(f"{CFG_NAME}: {e}") from None
    try:
        w = load_file(str(w_path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
        raise SAEFormatError(f"{WEIGHTS_NAME} is not a valid safetensors file: {e}") from None
    expect = {"W_enc": (cfg.d_in, cfg.d_sae), "W_dec": (cfg.d_sae, cfg.d_in), "b_enc": (cfg.d_sae,), "b_dec": (cfg.d_in,)}
    for key, shape in expect.items():
        if key not in w:
            raise SAEFormatError(f"{WEIGHTS_NAME} lacks {key}")
        if tuple(w[key].shape) != shape:
            raise SAEFormatError(f"{key} has shape {tuple(w[key].shape)}, cfg.json says {shape}")
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        for key in expect:
            getattr(sae, key).copy_(w[key].float())
        if "threshold" in w:
            sae.threshold.copy_(w["threshold"].float())
    return sae.to(device)
