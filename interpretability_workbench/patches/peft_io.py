"""Export patches as PEFT LoRA adapter folders (or the native format) zipped; import either back.

PEFT layout: ``adapter_config.json`` + ``adapter_model.safetensors`` with keys
``base_model.model.<module path>.lora_A.weight [r in]``, ``...lora_B.weight [out r]`` (+ ``lora_B.bias``
when ``lora_bias`` is on — the exact additive steer), ``...lora_embedding_A [r vocab]`` /
``...lora_embedding_B [d r]`` for embeddings. ``lora_alpha = r`` so PEFT's scaling is 1: the patch's
strength is baked into B (and the bias).

Native layout (every mode; the only one for clamp, which is an SAE splice and not a weight delta):
``patch.json`` (the PatchConfig) + ``sae/cfg.json`` + ``sae/sae_weights.safetensors`` (the SAE the patch
reads), or ``deltas.safetensors`` for imported adapters. Safetensors and JSON only; nothing is unpickled.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file

from ..errors import Invalid
from ..model.handle import ModelHandle
from ..sae.registry import SAERegistry
from ..store.artifacts import safe_join
from .config import PatchConfig
from .inject import base_of_path
from .lora import ModuleDelta, is_conv1d, scaling_for
from .manager import DELTAS_FILE, PatchManager, tensors_to_deltas

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
NATIVE_CONFIG = "patch.json"
SAE_DIR = "sae"
ALLOWED_SUFFIXES = (".json", ".safetensors", ".md", ".txt")
_PEFT_KEY = re.compile(
    r"^base_model\.model\.(?P<path>.+?)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)"
    r"(?:\.(?!(?:weight|bias)$)(?P<adapter>[A-Za-z0-9_-]+))?(?:\.(?P<tensor>weight|bias))?$")


class Export(NamedTuple):
    filename: str
    data: bytes
    note: str


def _zip_folder(folder: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"{prefix}/{f.relative_to(folder).as_posix()}")
    return buf.getvalue()


def write_peft_folder(deltas: list[ModuleDelta], scaling: float, folder: Path, *, base_model: str,
                      fan_in_fan_out: bool, meta: dict[str, Any] | None = None) -> None:
    """Write ``deltas`` (times ``scaling``) as a PEFT LoRA adapter folder."""
    from peft import LoraConfig

    has_bias = any(d.bias is not None for d in deltas)
    if has_bias and any(d.kind == "embedding" for d in deltas):
        raise Invalid("PEFT's lora_bias is not supported on embedding layers and this patch needs both (a "
                      "biased model's ablate/scale); export it with format=native")
    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    for d in deltas:
        pre = f"base_model.model.{d.path}"
        B = (d.B.float() * scaling).contiguous().cpu()
        ranks[d.path] = d.rank
        if d.kind == "embedding":
            tensors[f"{pre}.lora_embedding_A"] = d.A.float().contiguous().cpu()
            tensors[f"{pre}.lora_embedding_B"] = B
            continue
        tensors[f"{pre}.lora_A.weight"] = d.A.float().contiguous().cpu()
        tensors[f"{pre}.lora_B.weight"] = B
        if has_bias:
            bias = d.bias if d.bias is not None else torch.zeros(d.B.shape[0])
            tensors[f"{pre}.lora_B.bias"] = (bias.float() * scaling).contiguous().cpu()
    r = max(ranks.values())
    pattern = {p: k for p, k in ranks.items() if k != r}
    cfg = LoraConfig(r=r, lora_alpha=r, target_modules=sorted(ranks), lora_dropout=0.0, bias="none",
                     lora_bias=has_bias, fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM",
                     rank_pattern={f"^{re.escape(p)}$": k for p, k in pattern.items()},
                     alpha_pattern={f"^{re.escape(p)}$": k for p, k in pattern.items()},
                     base_model_name_or_path=base_model, inference_mode=True)
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(str(folder))
    save_file(tensors, str(folder / ADAPTER_WEIGHTS),
              metadata={"format": "pt", "iwb_patch": json.dumps(meta or {})})


class PatchTransfer:
    """Export and import of patches (zips), over the patch manager, the SAE registry and the loaded model."""

    def __init__(self, patches: PatchManager, saes: SAERegistry, model: ModelHandle, max_zip_bytes: int) -> None:
        self.patches, self.saes, self.model, self.max_zip_bytes = patches, saes, model, max_zip_bytes

    def export(self, patch_id: str, fmt: str) -> Export:
        return export_patch(self.patches, self.saes, self.model, patch_id, fmt)

    def import_zip(self, data: bytes, name: str | None = None) -> PatchConfig:
        return import_patch(self.patches, self.saes, self.model, data, name, max_bytes=self.max_zip_bytes)


def export_patch(pm: PatchManager, saes: SAERegistry, model: ModelHandle, patch_id: str, fmt: str) -> Export:
    cfg = pm.get(patch_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / cfg.id
        if fmt == "peft":
            if not cfg.is_weight_delta:
                raise Invalid(f"{cfg.mode} patches are an SAE splice, not a weight delta, so they have no exact "
                              "PEFT form; export them with format=native")
            lm = model.require()
            if cfg.model_id != lm.model_id:
                raise Invalid(f"patch {cfg.id} is for {cfg.model_id!r}; load that model to export it")
            deltas = pm.deltas_for(cfg)
            conv = any(is_conv1d(base_of_path(lm.model, d.path)) for d in deltas)
            write_peft_folder(deltas, scaling_for(cfg.mode, cfg.absolute_strength), folder, base_model=cfg.model_id,
                              fan_in_fan_out=conv, meta={**cfg.to_dict(), "base_model_revision": lm.revision,
                                                         "base_model_weights": lm.weights})
            return Export(f"{cfg.id}-peft.zip", _zip_folder(folder, cfg.id),
                          f"PEFT LoRA adapter (rank {cfg.rank}, strength {cfg.absolute_strength:g} baked in) for "
                          f"{cfg.model_id} [{lm.weights or lm.revision}]; load with "
                          "peft.PeftModel.from_pretrained(base_model, folder)")
        folder.mkdir(parents=True)
        doc = {"format": "iwb-patch-v1", "exact": True, "config": cfg.to_dict()}
        if cfg.mode == "adapter":
            shutil.copy(safe_join(pm.root, cfg.id, DELTAS_FILE), folder / DELTAS_FILE)
            note = "native patch: raw LoRA deltas (deltas.safetensors)"
        else:
            entry = saes.get(cfg.sae_id)
            shutil.copytree(entry.row.path, folder / SAE_DIR)
            note = ("native patch: patch.json + the SAE folder; clamp is an SAE splice (x + (v - f(x))·W_dec with the "
                    "error term kept) and has no PEFT form" if cfg.mode == "clamp"
                    else "native patch: patch.json + the SAE folder (the deltas are rebuilt from the SAE on import)")
        doc["note"] = note
        (folder / NATIVE_CONFIG).write_text(json.dumps(doc, indent=2))
        return Export(f"{cfg.id}-native.zip", _zip_folder(folder, cfg.id), note)


# import ----------------------------------------------------------------------------------------
def safe_extract(data: bytes, dest: Path, max_bytes: int) -> Path:
    """Extract a zip into ``dest``: members must stay inside, be plain .json/.safetensors files, and fit
    in ``max_bytes`` uncompressed. Returns the folder holding the config (top folder stripped)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Invalid("the upload is not a zip file; upload the zip that export produced") from None
    total = 0
    with zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            mode = (info.external_attr >> 16) & 0o170000
            if mode and mode != 0o100000:
                raise Invalid(f"zip member {name!r} is not a plain file (links are refused)")
            parts = Path(name).parts
            if name.startswith(("/", "\\")) or "\\" in name or ".." in parts or (parts and ":" in parts[0]):
                raise Invalid(f"zip member {name!r} would escape the import folder")
            if not name.endswith(ALLOWED_SUFFIXES):
                raise Invalid(f"zip member {name!r} is not allowed: only {', '.join(ALLOWED_SUFFIXES)} files")
            total += info.file_size
            if total > max_bytes:
                raise Invalid(f"the zip expands past {max_bytes} bytes")
            target = safe_join(dest, *parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    for cfg_name in (ADAPTER_CONFIG, NATIVE_CONFIG):
        hits = sorted(dest.rglob(cfg_name), key=lambda p: len(p.parts))
        if hits:
            return hits[0].parent
    raise Invalid(f"the zip holds neither {ADAPTER_CONFIG} (PEFT) nor {NATIVE_CONFIG} (native patch)")


def peft_deltas(folder: Path) -> tuple[list[ModuleDelta], dict[str, Any]]:
    """Read a PEFT LoRA folder into unit-scaling deltas (PEFT's scaling baked into B and the bias)."""
    try:
        cfg = json.loads((folder / ADAPTER_CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise Invalid(f"{ADAPTER_CONFIG} is not valid JSON: {e.msg}") from None
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise Invalid(f"only LoRA adapters can be imported, this one is {cfg.get('peft_type')}")
    if cfg.get("use_dora"):
        raise Invalid("DoRA adapters are not supported; export a plain LoRA adapter")
    wpath = folder / ADAPTER_WEIGHTS
    if not wpath.is_file():
        raise Invalid(f"the adapter has no {ADAPTER_WEIGHTS} (pickled .bin adapters are refused)")
    try:
        tensors = load_file(str(wpath))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
        raise Invalid(f"{ADAPTER_WEIGHTS} is not a valid safetensors file: {e}") from None
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        m = _PEFT_KEY.match(key)
        if not m:
            raise Invalid(f"unexpected tensor {key!r} in {ADAPTER_WEIGHTS}; only LoRA A/B tensors are supported")
        part = m["part"] + ("." + m["tensor"] if m["tensor"] == "bias" else "")
        groups.setdefault(m["path"], {})[part] = t.float()
    r0, alpha0 = int(cfg.get("r", 8)), float(cfg.get("lora_alpha", 8))
    rank_pat, alpha_pat = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    deltas = []
    for path, g in groups.items():
        r = next((int(v) for k, v in rank_pat.items() if re.search(f"(^|\\.){k.lstrip('^')}", path)), r0)
        alpha = next((float(v) for k, v in alpha_pat.items() if re.search(f"(^|\\.){k.lstrip('^')}", path)), alpha0)
        scaling = alpha / (r ** 0.5 if cfg.get("use_rslora") else r)
        if "lora_embedding_A" in g:
            if "lora_embedding_B" not in g:
                raise Invalid(f"{path}: lora_embedding_A without lora_embedding_B")
            deltas.append(ModuleDelta(path, "embedding", g["lora_embedding_A"], g["lora_embedding_B"] * scaling))
        else:
            if "lora_A" not in g or "lora_B" not in g:
                raise Invalid(f"{path}: needs both lora_A.weight and lora_B.weight")
            bias = g.get("lora_B.bias")
            deltas.append(ModuleDelta(path, "linear", g["lora_A"], g["lora_B"] * scaling,
                                      None if bias is None else bias * scaling))
    if not deltas:
        raise Invalid("the adapter holds no LoRA tensors")
    return deltas, cfg


def import_patch(pm: PatchManager, saes: SAERegistry, model: ModelHandle, data: bytes, name: str | None = None,
                 *, max_bytes: int) -> PatchConfig:
    """Import a PEFT LoRA zip or a native patch zip (unzipped size at most ``max_bytes``)."""
    model.require()
    with tempfile.TemporaryDirectory() as tmp:
        folder = safe_extract(data, Path(tmp), max_bytes)
        if (folder / ADAPTER_CONFIG).is_file():
            deltas, pcfg = peft_deltas(folder)
            return pm.create_adapter(
                deltas, name=name or f"adapter {Path(str(pcfg.get('base_model_name_or_path') or 'imported')).name}",
                extra={"source": "peft", "base_model_name_or_path": pcfg.get("base_model_name_or_path"),
                       "target_modules": sorted(d.path for d in deltas)})
        try:
            doc = json.loads((folder / NATIVE_CONFIG).read_text())
            cfg = PatchConfig.from_dict(doc["config"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise Invalid(f"{NATIVE_CONFIG} is not a patch description: {e}") from None
        if cfg.mode == "adapter":
            if not (folder / DELTAS_FILE).is_file():
                raise Invalid(f"a native adapter patch needs {DELTAS_FILE}")
            deltas = tensors_to_deltas(load_file(str(folder / DELTAS_FILE)))
            return pm.create_adapter(deltas, name=name or cfg.name, strength=cfg.strength, extra=cfg.extra)
        sae_id = cfg.sae_id
        if not sae_id or not saes.exists(sae_id):
            if not (folder / SAE_DIR).is_dir():
                raise Invalid(f"SAE {sae_id} is not known here and the zip has no {SAE_DIR}/ folder")
            sae_id = saes.import_folder(folder / SAE_DIR, name=f"from patch {cfg.name}")
        return pm.create(sae_id=sae_id, features=cfg.features, mode=cfg.mode, strength=cfg.strength,
                         name=name or cfg.name, enabled=cfg.enabled, strength_unit=cfg.strength_unit,
                         unit_scale=cfg.unit_scale if cfg.strength_unit != "absolute" else None,
                         origin=cfg.extra.get("origin"))

