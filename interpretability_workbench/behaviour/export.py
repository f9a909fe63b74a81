"""An edit set of weight-delta patches as one PEFT LoRA adapter.

Deltas of several patches on the same module add, and a sum of low-rank products is one low-rank product
with the ranks stacked: ``Σ_p s_p B_p A_p = [s_1 B_1 … s_n B_n] [A_1; …; A_n]`` (biases add). Each patch's
strength is baked in, so the adapter reproduces the edit set exactly (PEFT scaling 1).
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch

from ..errors import Invalid
from ..model.handle import ModelHandle
from ..patches.inject import base_of_path
from ..patches.lora import ModuleDelta, is_conv1d, scaling_for
from ..patches.manager import PatchManager
from ..patches.peft_io import write_peft_folder


class EditSetExport(NamedTuple):
    filename: str
    data: bytes
    """A zip of the adapter folder."""
    note: str


def merged_deltas(pm: PatchManager, patch_ids: list[str]) -> list[ModuleDelta]:
    """The edit set's deltas at unit scaling, one per module (ranks stacked, strengths baked in)."""
    per_path: dict[str, list[ModuleDelta]] = {}
    for pid in patch_ids:
        cfg = pm.get(pid)
        if not cfg.is_weight_delta:
            raise Invalid(f"patch {pid} is a {cfg.mode} patch (an SAE splice, not a weight delta): the edit set has "
                          "no exact PEFT form; export its patches natively (GET /api/patches/{id}/export"
                          "?format=native)")
        s = scaling_for(cfg.mode, cfg.strength)
        for d in pm.deltas_for(cfg):
            per_path.setdefault(d.path, []).append(
                ModuleDelta(d.path, d.kind, d.A.float(), d.B.float() * s, None if d.bias is None else d.bias.float() * s))
    out = []
    for path, ds in per_path.items():
        biases = [d.bias for d in ds if d.bias is not None]
        out.append(ModuleDelta(path, ds[0].kind, torch.cat([d.A for d in ds], 0), torch.cat([d.B for d in ds], 1),
                               torch.stack(biases).sum(0) if biases else None))
    return out


def export_edit_set(pm: PatchManager, model: ModelHandle, patch_ids: list[str], name: str,
                    meta: dict) -> EditSetExport:
    if not patch_ids:
        raise Invalid("the job produced no patches (nothing was within the budget); there is nothing to export")
    lm = model.require()
    for pid in patch_ids:
        if pm.get(pid).model_id != lm.model_id:
            raise Invalid(f"patch {pid} is for {pm.get(pid).model_id!r}; load that model to export it")
    deltas = merged_deltas(pm, patch_ids)
    conv = any(is_conv1d(base_of_path(lm.model, d.path)) for d in deltas)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        write_peft_folder(deltas, 1.0, folder, base_model=lm.model_id, fan_in_fan_out=conv, meta=meta)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    zf.write(f, f"{name}/{f.relative_to(folder).as_posix()}")
    rank = max(d.rank for d in deltas)
    return EditSetExport(f"{name}-peft.zip", buf.getvalue(),
                         f"PEFT LoRA adapter of {len(patch_ids)} patch(es) (rank up to {rank}, strengths baked in); "
                         "load with peft.PeftModel.from_pretrained(base_model, folder)")
