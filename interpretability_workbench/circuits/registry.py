"""TranscoderRegistry: transcoder sets known to the workbench.

Why the SAE registry holds them: every member of a set is an entry of the ``saes`` table with
``kind = 'transcoder'`` and the set's id, stored as a SAELens transcoder folder under the SAE artifacts.
So a transcoder feature *is* a registry feature: analysis (top contexts, logit effects), labels, the feature
pages, search and exports work on it unchanged through ``features_view`` (wired with
``SAERegistry.register_loader``), and an id from any page opens it. The ``transcoder_sets`` table
(``store/transcoders.py``) groups members into the set a circuit is traced with.

Loaded transcoders are cached (one copy, shared with the SAE view), frozen, and kept on the loaded model's
device. Import: a circuit-tracer transcoder-set folder or SAELens transcoder folders (zips checked by
``archive``); export: circuit-tracer's layout (ReLU/JumpReLU sets) or SAELens folders.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from ..errors import BadRequest, Invalid, NotFound
from ..model.handle import ModelHandle
from ..model.loader import LoadedModel
from ..sae.registry import SAERegistry
from ..store.db import new_id, now
from ..store.saes import SAERecord
from ..store.transcoders import TranscoderSetRecord, TranscoderSetRepo
from . import archive
from .features_view import feature_view
from .io import CT_CONFIG, CT_LAYER, SAELENS_CFG, SAELENS_WEIGHTS, load_circuit_tracer, load_transcoder, \
    save_circuit_tracer, save_transcoder
from .transcoder import Transcoder

KIND = "transcoder"


class RegisteredSet(NamedTuple):
    set_id: str
    sae_ids: list[str]
    """Member entries of the SAE registry, by layer."""


class FittedSet(NamedTuple):
    lm: LoadedModel
    transcoders: dict[int, Transcoder]
    """layer -> transcoder, on the model's device, frozen."""
    record: TranscoderSetRecord
    members: list[SAERecord]
    """By layer."""


class TranscoderRegistry:
    def __init__(self, sets: TranscoderSetRepo, saes: SAERegistry, model: ModelHandle | None = None) -> None:
        self.sets, self.saes, self._model = sets, saes, model
        self.device = torch.device("cpu")
        self._cache: dict[str, Transcoder] = {}
        self._lock = threading.Lock()
        saes.register_loader(KIND, lambda rec, device: feature_view(self.member(rec.id)))
        if model is not None:
            model.on_change(lambda _old, new: self.move_to(new.device))
            if model.lm is not None:
                self.device = model.lm.device

    def move_to(self, device: torch.device | str) -> None:
        device = torch.device(device)
        with self._lock:
            self.device = device
            for tc in self._cache.values():
                tc.to(device)

    # queries -----------------------------------------------------------------------------
    def list(self) -> list[TranscoderSetRecord]:
        return self.sets.list()

    def get(self, set_id: str) -> TranscoderSetRecord:
        rec = self.sets.get(set_id)
        if rec is None:
            raise NotFound(f"transcoder set {set_id!r} not found; GET /api/transcoders lists them")
        return rec

    def members(self, set_id: str) -> list[SAERecord]:
        self.get(set_id)
        return self.saes.of_set(set_id)

    def member(self, sae_id: str) -> Transcoder:
        """One transcoder by its SAE-registry id (cached, frozen, on the registry's device)."""
        with self._lock:
            tc = self._cache.get(sae_id)
        if tc is not None:
            return tc
        rec = self.saes.row(sae_id)
        if rec.kind != KIND:
            raise Invalid(f"{sae_id} is an SAE, not a transcoder")
        tc = load_transcoder(rec.path, device=self.device).eval()
        for p in tc.parameters():
            p.requires_grad_(False)
        with self._lock:
            return self._cache.setdefault(sae_id, tc)

    def fitted(self, set_id: str) -> FittedSet:
        """The set's transcoders (404 unknown) for the loaded model (400 without one or when they do not fit)."""
        rec = self.get(set_id)
        if self._model is None:
            raise RuntimeError("this registry has no model handle")
        lm = self._model.require()
        if rec.model_id and rec.model_id != lm.model_id:
            raise BadRequest(f"transcoder set {set_id} was trained on {rec.model_id!r} but the loaded model is "
                             f"{lm.model_id!r}; load that model or pick a set of the loaded model")
        members = self.saes.of_set(set_id)
        tcs = {}
        for m in members:
            tc = self.member(m.id)
            if tc.cfg.d_in != lm.d_model or tc.layer >= lm.n_layers:
                raise BadRequest(f"transcoder set {set_id} (layer {tc.layer}, d_model {tc.cfg.d_in}) does not fit "
                                 f"the loaded model ({lm.n_layers} layers, d_model {lm.d_model})")
            tcs[tc.layer] = tc
        if not tcs:
            raise Invalid(f"transcoder set {set_id} has no members")
        return FittedSet(lm, tcs, rec, members)

    def sae_id_for(self, set_id: str, layer: int) -> str:
        for m in self.saes.of_set(set_id):
            if m.layer == layer:
                return m.id
        raise NotFound(f"transcoder set {set_id} has no transcoder at layer {layer}")

    # registration ----------------------------------------------------------------------------
    def register_set(self, transcoders: Sequence[Transcoder], *, name: str, source: str = "trained",
                     run_id: str | None = None, metrics: dict | None = None, scan: str | None = None) -> RegisteredSet:
        """Save each transcoder as a registry entry (a SAELens transcoder folder) and record the set."""
        tcs = sorted(transcoders, key=lambda t: t.layer)
        layers = [t.layer for t in tcs]
        if not tcs or len(set(layers)) != len(layers):
            raise Invalid(f"a transcoder set needs one transcoder per layer, got layers {layers}")
        models = {t.cfg.model_id for t in tcs}
        if len(models) > 1:
            raise Invalid(f"the transcoders come from different models: {sorted(models)}")
        first = tcs[0].cfg
        set_id = new_id("tcs")
        sae_ids: list[str] = []
        try:
            for tc in tcs:
                sid = new_id("sae")
                folder = save_transcoder(tc, self.saes.folder_for(sid))
                c = tc.cfg
                self.saes.add_row(SAERecord(
                    id=sid, name=f"{name} · layer {c.layer}", model_id=c.model_id, hook_name=c.input_hook,
                    layer=c.layer, d_in=c.d_in, d_sae=c.d_tc, architecture=c.architecture, path=str(folder),
                    source=source, created_at=now(), run_id=run_id, metrics=dict(c.extra), kind=KIND, set_id=set_id))
                sae_ids.append(sid)
            self.sets.insert(TranscoderSetRecord(
                id=set_id, name=name, model_id=first.model_id,
                scan=scan or f"{first.model_id.split('/')[-1] or 'model'}/{set_id}", layers=layers,
                architecture=first.architecture, d_tc=first.d_tc, skip=first.skip, source=source,
                created_at=now(), run_id=run_id, metrics=metrics or {}))
        except Exception:
            for sid in sae_ids:
                self._drop_member(sid)
            raise
        return RegisteredSet(set_id, sae_ids)

    def import_zip(self, data: bytes, *, name: str | None = None) -> RegisteredSet:
        with tempfile.TemporaryDirectory(prefix="transcoders-import-") as tmp:
            return self.import_folder(archive.unpack(data, Path(tmp)), name=name)

    def import_folder(self, folder: Path, *, name: str | None = None) -> RegisteredSet:
        """A circuit-tracer transcoder-set folder, or one or more SAELens transcoder folders under ``folder``."""
        kind, found = archive.find_set_root(Path(folder))
        if kind == "circuit-tracer":
            ts = load_circuit_tracer(found)  # type: ignore[arg-type]
            for t in ts.transcoders:
                t.cfg.extra = {**t.cfg.extra, "imported_from": "circuit-tracer"}
            return self.register_set(ts.transcoders, name=name or ts.scan, source="imported", scan=ts.scan,
                                     metrics={"imported_from": "circuit-tracer"})
        tcs = [load_transcoder(f) for f in found]  # type: ignore[union-attr]
        return self.register_set(tcs, name=name or Path(folder).name, source="imported",
                                 metrics={"imported_from": "saelens"})

    # export ------------------------------------------------------------------------------------
    def export_circuit_tracer(self, set_id: str) -> bytes:
        """The set as circuit-tracer's folder layout, zipped (ReLU/JumpReLU sets covering layers 0..n-1)."""
        rec = self.get(set_id)
        tcs = [self.member(m.id) for m in self.saes.of_set(set_id)]
        with tempfile.TemporaryDirectory(prefix="transcoders-export-") as tmp:
            out = save_circuit_tracer(tcs, Path(tmp) / "set", scan=rec.scan)
            files = {CT_CONFIG: out / CT_CONFIG}
            files.update({CT_LAYER.format(layer=t.layer): out / CT_LAYER.format(layer=t.layer) for t in tcs})
            return archive.zip_files(files)

    def export_saelens(self, set_id: str) -> bytes:
        """One SAELens transcoder folder per layer (``layer_{i}/cfg.json`` + ``sae_weights.safetensors``), zipped."""
        self.get(set_id)
        files = {}
        for m in self.saes.of_set(set_id):
            for f in (SAELENS_CFG, SAELENS_WEIGHTS):
                files[f"layer_{m.layer}/{f}"] = Path(m.path) / f
        return archive.zip_files(files)

    def delete(self, set_id: str) -> None:
        self.get(set_id)
        for m in self.saes.of_set(set_id):
            self._drop_member(m.id)
        self.sets.delete(set_id)

    def _drop_member(self, sae_id: str) -> None:
        with self._lock:
            self._cache.pop(sae_id, None)
        self.saes.forget(sae_id)
        if self.saes.exists(sae_id):
            self.saes.delete(sae_id)
        else:
            shutil.rmtree(self.saes.folder_for(sae_id), ignore_errors=True)
