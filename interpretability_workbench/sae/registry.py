"""SAERegistry: SAE artifacts known to the workbench, loaded by id, cached, and kept on the loaded model's
device (moved when another model is loaded). Rows live in the ``saes`` table (``store/saes.py``), folders
under the workspace in SAELens v6 layout. ``PretrainedImporter`` brings in SAEs of pretrained releases
(``sae/pretrained.py``) through it.

Entries of another ``kind`` (transcoders: ``kind = 'transcoder'``) are read by the loader registered for that
kind (``register_loader``), which returns a ``SparseAutoencoder`` view of them, so feature analysis, labels and
exports treat their features like any SAE's."""
from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from ..errors import Invalid, NotFound
from ..model.handle import ModelHandle
from ..model.loader import LoadedModel
from ..store.db import new_id, now
from ..store.saes import SAERecord, SAERepo
from .compat import check_sae_fits
from .io import SAEFormatError, load_sae, save_sae
from .model import SparseAutoencoder
from .pretrained import ReleaseIndex, ReleaseInfo, list_releases, load_release


class SAEEntry(NamedTuple):
    sae: SparseAutoencoder
    """On the registry's device (the loaded model's), fp32, frozen."""
    row: SAERecord


KindLoader = Callable[[SAERecord, torch.device], SparseAutoencoder]
"""Reads an entry of a non-SAE kind as a SparseAutoencoder view, on the given device."""


class FittedSAE(NamedTuple):
    lm: LoadedModel
    sae: SparseAutoencoder
    row: SAERecord


class SAERegistry:
    def __init__(self, repo: SAERepo, root: Path, model: ModelHandle | None = None) -> None:
        self.repo, self.root = repo, Path(root)
        self._model = model
        self.device = torch.device("cpu")
        self._cache: dict[str, SparseAutoencoder] = {}
        self._lock = threading.Lock()
        self._loaders: dict[str, KindLoader] = {}
        if model is not None:
            model.on_change(lambda _old, new: self.move_to(new.device))
            if model.lm is not None:
                self.device = model.lm.device

    def register_loader(self, kind: str, loader: KindLoader) -> None:
        """Read entries of ``kind`` with ``loader`` (the composition root wires the transcoder view)."""
        self._loaders[kind] = loader

    def add_row(self, rec: SAERecord) -> None:
        """Record an artifact whose folder the caller has written under ``folder_for(rec.id)``."""
        self.repo.insert(rec)

    def of_set(self, set_id: str) -> list[SAERecord]:
        """Members of a transcoder set, by layer."""
        return self.repo.of_set(set_id)

    def folder_for(self, sae_id: str) -> Path:
        return self.root / sae_id

    def move_to(self, device: torch.device | str) -> None:
        """Keep every cached SAE on ``device`` from now on."""
        device = torch.device(device)
        with self._lock:
            self.device = device
            for sid, sae in self._cache.items():
                self._cache[sid] = sae.to(device)

    def register(self, sae: SparseAutoencoder, *, name: str | None = None, source: str = "trained",
                 run_id: str | None = None, metrics: dict | None = None, sae_id: str | None = None) -> str:
        """Save ``sae`` as a SAELens folder under the workspace and record it; returns its id."""
        sae_id = sae_id or new_id("sae")
        folder = save_sae(sae, self.folder_for(sae_id))
        cfg = sae.cfg
        self.repo.insert(SAERecord(
            id=sae_id, name=name or f"{cfg.architecture} {cfg.hook_name} d_sae={cfg.d_sae}", model_id=cfg.model_id,
            hook_name=cfg.hook_name, layer=cfg.layer, d_in=cfg.d_in, d_sae=cfg.d_sae, architecture=cfg.architecture,
            path=str(folder), source=source, created_at=now(), run_id=run_id, metrics=metrics or {}))
        return sae_id

    def import_folder(self, folder: Path, *, name: str | None = None, source: str = "imported") -> str:
        """Validate and copy a SAELens folder into the workspace (through our loader: safetensors only)."""
        try:
            sae = load_sae(folder)
        except SAEFormatError as e:
            raise Invalid(str(e)) from None
        if not sae.cfg.hook_name:
            raise Invalid("the SAE's cfg.json has no hook_name (metadata.hook_name); it is needed to place it")
        try:
            sae.cfg.layer
        except ValueError as e:
            raise Invalid(f"cfg.json hook_name: {e}") from None
        return self.register(sae, name=name or Path(folder).name, source=source)

    def row(self, sae_id: str) -> SAERecord:
        rec = self.repo.get(sae_id)
        if rec is None:
            raise NotFound(f"SAE {sae_id!r} not found; GET /api/saes lists them")
        return rec

    def get(self, sae_id: str) -> SAEEntry:
        rec = self.row(sae_id)
        with self._lock:
            sae = self._cache.get(sae_id)
            if sae is None:
                if rec.kind != "sae":
                    loader = self._loaders.get(rec.kind)
                    if loader is None:
                        raise Invalid(f"{sae_id} is a {rec.kind}, which this workbench cannot read")
                    sae = loader(rec, self.device).eval()
                else:
                    sae = load_sae(rec.path, device=self.device).eval()
                for p in sae.parameters():
                    p.requires_grad_(False)
                self._cache[sae_id] = sae
        return SAEEntry(sae, rec)

    def fitted(self, sae_id: str) -> FittedSAE:
        """The SAE (404 unknown) with the loaded model (400 none) it fits (400 with what to do otherwise)."""
        entry = self.get(sae_id)
        if self._model is None:
            raise RuntimeError("this registry has no model handle")
        lm = self._model.require()
        check_sae_fits(lm, entry.sae, sae_id)
        return FittedSAE(lm, entry.sae, entry.row)

    def exists(self, sae_id: str) -> bool:
        return self.repo.get(sae_id) is not None

    def list(self) -> list[SAERecord]:
        return self.repo.list()

    def of_model_below(self, model_id: str, layer: int, exclude: str | None = None) -> list[SAERecord]:
        """SAEs of ``model_id`` reading a block below ``layer``."""
        return self.repo.of_model_below(model_id, layer, exclude)

    def update_metrics(self, sae_id: str, metrics: dict) -> None:
        self.repo.update_metrics(sae_id, metrics)

    def forget(self, sae_id: str) -> None:
        """Drop a cached entry (its folder is about to change or vanish)."""
        with self._lock:
            self._cache.pop(sae_id, None)

    def delete(self, sae_id: str) -> None:
        rec = self.row(sae_id)
        with self._lock:
            self._cache.pop(sae_id, None)
        self.repo.delete(sae_id)
        shutil.rmtree(rec.path, ignore_errors=True)


class ImportedPretrained(NamedTuple):
    sae_id: str
    """Id in the workbench's registry."""
    release: str
    pretrained_id: str
    """Id inside the release."""


class PretrainedImporter:
    """Pretrained SAE suites (SAELens's registry + ``IWB_SAE_REGISTRY`` files), imported through the SAE
    registry with ``source='pretrained'``. The release index is read once, on first use."""

    def __init__(self, saes: SAERegistry, model: ModelHandle, registry_files: Sequence[Path | str] = (), *,
                 downloads: bool = False, cache_dir: Path | str | None = None) -> None:
        """``downloads``: fetch missing files from the Hugging Face Hub (else the local cache only);
        ``cache_dir``: the Hugging Face hub cache (None: huggingface_hub's default)."""
        self.saes, self.model = saes, model
        self.registry_files = [Path(p) for p in registry_files]
        self.local_files_only = not downloads
        self.cache_dir = cache_dir
        self._index: ReleaseIndex | None = None
        self._index_lock = threading.Lock()

    def index(self) -> ReleaseIndex:
        with self._index_lock:
            if self._index is None:
                self._index = ReleaseIndex.load(self.registry_files)
            return self._index

    def releases(self, query: str | None = None, *, any_model: bool = False) -> list[ReleaseInfo]:
        """Releases for the loaded model (every model with ``any_model`` or when none is loaded) matching
        ``query`` (space-separated terms over release, repo, model, SAE ids)."""
        lm = self.model.lm
        model_id = None if any_model or lm is None else lm.model_id
        return list_releases(model_id, query, index=self.index(), cache_dir=self.cache_dir)

    def import_release(self, release: str, sae_ids: Sequence[str] | None = None) -> list[ImportedPretrained]:
        """Import ``sae_ids`` of ``release`` (all of it when None) in one call, all or nothing: every file is
        resolved and every SAE checked against the loaded model before any is registered. An SAE of the
        loaded model is recorded under that model's id (the registry's name is kept in its config)."""
        lm = self.model.lm
        loaded = load_release(release, model_id=lm.model_id if lm is not None else None, sae_ids=sae_ids,
                              cache_dir=self.cache_dir, local_files_only=self.local_files_only, index=self.index())
        for p in loaded:
            cfg = p.sae.cfg
            cfg.extra["pretrained"]["model"] = p.resolved.info.model or cfg.model_id
            if lm is not None:
                cfg.model_id = lm.model_id
                cfg.model_revision = cfg.model_revision or lm.revision
                check_sae_fits(lm, p.sae, f"{release}/{p.sae_id}")
        return [ImportedPretrained(self.saes.register(p.sae, name=f"{release}/{p.sae_id}", source="pretrained"),
                                   release, p.sae_id) for p in loaded]
