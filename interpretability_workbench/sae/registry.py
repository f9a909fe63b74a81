"""SAERegistry (``state.saes``): SAE artifacts known to the workbench, loaded by id and cached."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import Invalid, NotFound
from ..store.db import Database, new_id, now
from .io import SAEFormatError, load_sae, save_sae
from .model import SparseAutoencoder


class SAEEntry(NamedTuple):
    sae: SparseAutoencoder
    row: dict[str, Any]


class SAERegistry:
    def __init__(self, db: Database, root: Path, device: Any = "cpu") -> None:
        self.db, self.root, self.device = db, Path(root), device
        self._cache: dict[str, SparseAutoencoder] = {}
        self._lock = threading.Lock()

    def folder_for(self, sae_id: str) -> Path:
        return self.root / sae_id

    def register(self, sae: SparseAutoencoder, *, name: str | None = None, source: str = "trained",
                 run_id: str | None = None, metrics: dict | None = None, sae_id: str | None = None) -> str:
        """Save ``sae`` as a SAELens folder under the workspace and record it; returns its id."""
        sae_id = sae_id or new_id("sae")
        folder = save_sae(sae, self.folder_for(sae_id))
        cfg = sae.cfg
        self.db.insert("saes", {
            "id": sae_id, "name": name or f"{cfg.architecture} {cfg.hook_name} d_sae={cfg.d_sae}",
            "model_id": cfg.model_id, "hook_name": cfg.hook_name, "layer": cfg.layer, "d_in": cfg.d_in,
            "d_sae": cfg.d_sae, "architecture": cfg.architecture, "path": str(folder), "source": source,
            "run_id": run_id, "metrics_json": metrics or {}, "created_at": now(),
        })
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

    def get(self, sae_id: str) -> SAEEntry:
        row = self.db.get("saes", id=sae_id)
        if row is None:
            raise NotFound(f"SAE {sae_id!r} not found; GET /api/saes lists them")
        with self._lock:
            sae = self._cache.get(sae_id)
            if sae is None:
                sae = load_sae(row["path"], device=self.device).eval()
                for p in sae.parameters():
                    p.requires_grad_(False)
                self._cache[sae_id] = sae
        return SAEEntry(sae, row)

    def list(self) -> list[dict[str, Any]]:
        return self.db.query("SELECT * FROM saes ORDER BY created_at")

    def update_metrics(self, sae_id: str, metrics: dict) -> None:
        self.db.update("saes", {"id": sae_id}, {"metrics_json": metrics})

    def delete(self, sae_id: str) -> None:
        row = self.get(sae_id).row
        with self._lock:
            self._cache.pop(sae_id, None)
        self.db.delete("saes", id=sae_id)
        shutil.rmtree(row["path"], ignore_errors=True)
