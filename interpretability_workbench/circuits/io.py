"""Transcoders on disk: circuit-tracer's transcoder-set folders and SAELens transcoder folders.
Safetensors and YAML/JSON only: nothing is ever unpickled.

circuit-tracer (``load_transcoder_set`` / ``load_relu_transcoder``, and its local cache layout)::

    config.yaml            model_kind: transcoder_set, model_name, feature_input_hook, feature_output_hook,
                           scan (optional); a ``transcoders`` list of per-layer paths, or none (then files
                           ``layer_{i}.safetensors`` are found beside it)
    layer_{i}.safetensors  W_enc [d_tc d_model], W_dec [d_tc d_model], b_enc [d_tc], b_dec [d_model],
                           optional activation_function.threshold [d_tc] (JumpReLU, else ReLU),
                           optional W_skip [d_model d_model] applied as ``x @ W_skip.T``

circuit-tracer reads ReLU and JumpReLU transcoders only, so a TopK set is refused there.

SAELens (``sae_lens.saes.transcoder``): ``cfg.json`` (``architecture`` transcoder | skip_transcoder |
jumprelu_transcoder | jumprelu_skip_transcoder, ``d_in``, ``d_sae``, ``d_out``, ``metadata`` with
``hook_name``/``hook_name_out``) + ``sae_weights.safetensors`` (``W_enc [d_in d_sae]``, ``W_dec [d_sae d_out]``,
``b_enc``, ``b_dec``, ``threshold``, ``W_skip [d_out d_in]`` applied as ``x @ W_skip.T``). SAELens has no
TopK transcoder: ours are saved with architecture ``topk_transcoder``, which SAELens refuses rather than
misreads; our own fields ride along under ``iwb``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
from safetensors.torch import load_file, save_file

from ..errors import Invalid, NotFound
from ..store.artifacts import atomic_dir
from .transcoder import Transcoder, TranscoderConfig

CT_CONFIG = "config.yaml"
CT_LAYER = "layer_{layer}.safetensors"
CT_THRESHOLD = "activation_function.threshold"
CT_INPUT_HOOK = "mlp.hook_in"
"""circuit-tracer's name for the MLP input (both its TransformerLens and nnsight backends, Llama family)."""
CT_OUTPUT_HOOK = "mlp.hook_out"
SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
IWB_KEY = "iwb"

# TransformerLens-style site names other tools use for a transcoder's input and output
_INPUT_SITES = {"mlp.hook_in", "ln2.hook_normalized", "hook_mlp_in"}
_OUTPUT_SITES = {"mlp.hook_out", "hook_mlp_out"}
_LAYER_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _site_kind(site: str, what: str) -> str:
    if site in _INPUT_SITES:
        return "mlp_in"
    if site in _OUTPUT_SITES:
        return "mlp_out"
    raise Invalid(f"{what} {site!r} is not supported: the workbench traces transcoders that read the MLP input "
                  f"({', '.join(sorted(_INPUT_SITES))}) and write the MLP output ({', '.join(sorted(_OUTPUT_SITES))})")


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise Invalid(f"{path.name} is not a valid safetensors file: {e}") from None


def _check(w: dict[str, torch.Tensor], expect: dict[str, tuple[int, ...]], name: str) -> None:
    for key, shape in expect.items():
        if key not in w:
            raise Invalid(f"{name} lacks {key}")
        if tuple(w[key].shape) != shape:
            raise Invalid(f"{name}: {key} has shape {tuple(w[key].shape)}, expected {shape}")


def _build(cfg: TranscoderConfig, w: dict[str, torch.Tensor], device: str | torch.device) -> Transcoder:
    tc = Transcoder(cfg)
    with torch.no_grad():
        for key in ("W_enc", "W_dec", "b_enc", "b_dec", "W_skip", "threshold"):
            if key in w and getattr(tc, key) is not None:
                getattr(tc, key).copy_(w[key].float())
    return tc.to(device)


# ---- circuit-tracer ----------------------------------------------------------------------------


def save_circuit_tracer(transcoders: Sequence[Transcoder], folder: str | Path, *, scan: str | None = None) -> Path:
    """Write one transcoder per layer 0..n-1 as a circuit-tracer transcoder-set folder."""
    import yaml

    tcs = sorted(transcoders, key=lambda t: t.layer)
    if [t.layer for t in tcs] != list(range(len(tcs))) or not tcs:
        raise Invalid("circuit-tracer needs one transcoder for every layer 0..n-1; got layers "
                      f"{[t.layer for t in tcs]}")
    for t in tcs:
        if t.cfg.architecture == "topk":
            raise Invalid("circuit-tracer reads ReLU and JumpReLU transcoders only; this set has TopK transcoders "
                          "(save them in the workbench's own format instead)")
        if t.cfg.d_in != t.cfg.d_out:
            raise Invalid("circuit-tracer transcoders map d_model to d_model")
    model_ids = {t.cfg.model_id for t in tcs}
    if len(model_ids) > 1:
        raise Invalid(f"the transcoders come from different models: {sorted(model_ids)}")
    model_id = model_ids.pop()
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        for t in tcs:
            w = {"W_enc": t.W_enc.T, "W_dec": t.W_dec, "b_enc": t.b_enc, "b_dec": t.b_dec}
            if t.cfg.architecture == "jumprelu":
                w[CT_THRESHOLD] = t.threshold
            if t.W_skip is not None:
                w["W_skip"] = t.W_skip.T
            save_file({k: v.detach().float().contiguous().cpu() for k, v in w.items()},
                      str(tmp / CT_LAYER.format(layer=t.layer)))
        config = {
            "model_kind": "transcoder_set", "model_name": model_id,
            "feature_input_hook": CT_INPUT_HOOK, "feature_output_hook": CT_OUTPUT_HOOK,
            "scan": scan or f"{model_id.split('/')[-1]}/iwb-transcoders",
            IWB_KEY: [t.cfg.to_dict() for t in tcs],
        }
        (tmp / CT_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


class TranscoderSet(NamedTuple):
    transcoders: list[Transcoder]
    """One per layer, layer 0 first."""
    model_name: str
    """Base model the set was trained on."""
    scan: str
    """Set identifier (circuit-tracer's ``scan``)."""


def _ct_paths(folder: Path, config: dict[str, Any]) -> list[Path]:
    listed = config.get("transcoders")
    if listed:
        paths = []
        for p in listed:
            if str(p).startswith("hf://"):
                raise Invalid(f"{CT_CONFIG} lists {p}: download the files and list local paths (nothing is "
                              "fetched at run time)")
            path = Path(p) if Path(p).is_absolute() else folder / p
            paths.append(path)
        return paths
    n = len(list(folder.glob("layer_*.safetensors")))
    return [folder / CT_LAYER.format(layer=i) for i in range(n)]


def load_circuit_tracer(folder: str | Path, device: str | torch.device = "cpu") -> TranscoderSet:
    """Read a circuit-tracer transcoder-set folder (ours or circuit-tracer's own)."""
    import yaml

    folder = Path(folder)
    cfg_path = folder / CT_CONFIG
    if not cfg_path.is_file():
        raise NotFound(f"{folder} is not a circuit-tracer transcoder folder: it needs {CT_CONFIG}")
    try:
        config = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise Invalid(f"{CT_CONFIG} is not valid YAML: {e}") from None
    kind = config.get("model_kind", "transcoder_set")
    if kind != "transcoder_set":
        raise Invalid(f"model_kind {kind!r} is not supported: import per-layer transcoder sets (transcoder_set)")
    _site_kind(str(config.get("feature_input_hook", "")), "feature_input_hook")
    _site_kind(str(config.get("feature_output_hook", "")), "feature_output_hook")
    paths = _ct_paths(folder, config)
    if not paths:
        raise Invalid(f"{folder} holds no layer_*.safetensors files")
    model_name = str(config.get("model_name", ""))
    ours = config.get(IWB_KEY) or []
    tcs = []
    for layer, path in enumerate(paths):
        if not path.is_file():
            raise NotFound(f"transcoder file {path} is missing (layers must be 0..n-1)")
        w = _load_tensors(path)
        if "b_enc" not in w or "b_dec" not in w:
            raise Invalid(f"{path.name} lacks b_enc or b_dec")
        d_tc, d_model = int(w["b_enc"].shape[0]), int(w["b_dec"].shape[0])
        _check(w, {"W_enc": (d_tc, d_model), "W_dec": (d_tc, d_model)}, path.name)
        if "W_skip" in w:
            _check(w, {"W_skip": (d_model, d_model)}, path.name)
        if CT_THRESHOLD in w:
            _check(w, {CT_THRESHOLD: (d_tc,)}, path.name)
        base = dict(ours[layer]) if layer < len(ours) else {}
        base.update(d_in=d_model, d_tc=d_tc, d_out=d_model, layer=layer, skip="W_skip" in w,
                    architecture="jumprelu" if CT_THRESHOLD in w else "relu", k=None,
                    input_hook="", output_hook="")
        base.setdefault("model_id", model_name)
        cfg = TranscoderConfig.from_dict(base)
        tensors = {"W_enc": w["W_enc"].T, "W_dec": w["W_dec"], "b_enc": w["b_enc"], "b_dec": w["b_dec"]}
        if "W_skip" in w:
            tensors["W_skip"] = w["W_skip"].T
        if CT_THRESHOLD in w:
            tensors["threshold"] = w[CT_THRESHOLD]
        tcs.append(_build(cfg, tensors, device))
    return TranscoderSet(tcs, model_name, str(config.get("scan") or folder.name))


# ---- SAELens -----------------------------------------------------------------------------------


def _saelens_arch(cfg: TranscoderConfig) -> str:
    base = {"relu": "transcoder", "jumprelu": "jumprelu_transcoder", "topk": "topk_transcoder"}[cfg.architecture]
    return base.replace("transcoder", "skip_transcoder") if cfg.skip else base


def save_transcoder(tc: Transcoder, folder: str | Path) -> Path:
    """Write a SAELens transcoder folder (``cfg.json`` + ``sae_weights.safetensors``) atomically."""
    cfg = tc.cfg
    w = {"W_enc": tc.W_enc, "W_dec": tc.W_dec, "b_enc": tc.b_enc, "b_dec": tc.b_dec}
    if cfg.architecture == "jumprelu":
        w["threshold"] = tc.threshold
    if tc.W_skip is not None:
        w["W_skip"] = tc.W_skip.T
    raw = {
        "d_in": cfg.d_in, "d_sae": cfg.d_tc, "d_out": cfg.d_out, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": False, "normalize_activations": "none", "reshape_activations": "none",
        "architecture": _saelens_arch(cfg),
        "metadata": {
            "model_name": cfg.model_id, "model_revision": cfg.model_revision, "model_class_name": cfg.model_class_name,
            "hook_name": cfg.input_hook, "hook_name_out": cfg.output_hook, "hook_head_index": None,
            "hook_head_index_out": None, "context_size": cfg.context_size, "dataset_path": cfg.dataset_path,
            "prepend_bos": True, "model_from_pretrained_kwargs": {}, "sae_lens_training_version": None,
        },
        IWB_KEY: cfg.to_dict(),
    }
    if cfg.architecture == "topk":
        raw["k"] = cfg.k
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        save_file({k: v.detach().float().contiguous().cpu() for k, v in w.items()}, str(tmp / SAELENS_WEIGHTS))
        (tmp / SAELENS_CFG).write_text(json.dumps(raw, indent=2))
    return folder


def _layer_from_hook(name: str | None) -> tuple[int, str] | None:
    m = _LAYER_RE.match(name or "")
    return (int(m.group(1)), m.group(2)) if m else None


def _saelens_cfg(raw: dict[str, Any], layer: int | None) -> TranscoderConfig:
    if IWB_KEY in raw:
        return TranscoderConfig.from_dict(raw[IWB_KEY])
    arch = str(raw.get("architecture", ""))
    known = {"transcoder": "relu", "skip_transcoder": "relu", "jumprelu_transcoder": "jumprelu",
             "jumprelu_skip_transcoder": "jumprelu"}
    if arch not in known:
        raise Invalid(f"architecture {arch!r} is not a SAELens transcoder ({', '.join(known)})")
    meta = raw.get("metadata") or {}
    get = lambda k: meta.get(k, raw.get(k))  # noqa: E731 - pre-v6 configs keep metadata at the top level
    found = _layer_from_hook(get("hook_name"))
    if found is not None:
        _site_kind(found[1], "hook_name")
        out = _layer_from_hook(get("hook_name_out"))
        if out is not None:
            _site_kind(out[1], "hook_name_out")
        if layer is not None and layer != found[0]:
            raise Invalid(f"cfg.json says layer {found[0]}, {layer} was given")
        layer = found[0]
    if layer is None:
        raise Invalid("cfg.json names no hook_name to take the layer from: give the layer")
    if raw.get("normalize_activations", "none") not in ("none", None):
        raise Invalid("normalize_activations other than 'none' needs a statistic SAELens keeps outside the folder")
    try:
        d_in, d_tc = int(raw["d_in"]), int(raw["d_sae"])
        d_out = int(raw.get("d_out", d_in))
    except (KeyError, TypeError, ValueError):
        raise Invalid("cfg.json needs integer d_in, d_sae and d_out") from None
    return TranscoderConfig(
        d_in=d_in, d_tc=d_tc, d_out=d_out, architecture=known[arch], k=None, skip="skip" in arch, layer=layer,
        model_id=str(get("model_name") or ""), model_revision=get("model_revision"),
        model_class_name=str(get("model_class_name") or ""), context_size=int(get("context_size") or 128),
        dataset_path=str(get("dataset_path") or ""), extra={"imported_from": "saelens", "saelens_architecture": arch},
    )


def load_transcoder(folder: str | Path, device: str | torch.device = "cpu", *, layer: int | None = None) -> Transcoder:
    """Read a SAELens transcoder folder (ours or SAELens's own). ``layer`` is needed only when its
    ``cfg.json`` names no hook."""
    folder = Path(folder)
    cfg_path, w_path = folder / SAELENS_CFG, folder / SAELENS_WEIGHTS
    if not cfg_path.is_file() or not w_path.is_file():
        raise NotFound(f"{folder} is not a transcoder folder: it needs {SAELENS_CFG} and {SAELENS_WEIGHTS}")
    try:
        raw = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise Invalid(f"{SAELENS_CFG} is not valid JSON: {e.msg}") from None
    try:
        cfg = _saelens_cfg(raw, layer)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{SAELENS_CFG}: {e}") from None
    w = _load_tensors(w_path)
    expect = {"W_enc": (cfg.d_in, cfg.d_tc), "W_dec": (cfg.d_tc, cfg.d_out), "b_enc": (cfg.d_tc,), "b_dec": (cfg.d_out,)}
    if cfg.skip:
        expect["W_skip"] = (cfg.d_out, cfg.d_in)  # type: ignore[assignment]
    if cfg.architecture == "jumprelu":
        expect["threshold"] = (cfg.d_tc,)
    _check(w, expect, SAELENS_WEIGHTS)  # type: ignore[arg-type]
    if "W_skip" in w:
        w["W_skip"] = w["W_skip"].T
    return _build(cfg, w, device)
