"""The ``patches`` table: stored patch configurations (the patch manager keeps the live ones in memory)."""
from __future__ import annotations

from typing import Any

from .db import Database


class PatchRepo:
    """Rows are keyed by patch id; each holds the full config (``PatchConfig.to_dict()``) plus indexed columns."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _row(cfg: dict[str, Any]) -> dict[str, Any]:
        return {"id": cfg["id"], "name": cfg["name"], "sae_id": cfg.get("sae_id"), "mode": cfg["mode"],
                "features_json": cfg.get("features") or [], "strength": cfg["strength"],
                "enabled": int(bool(cfg.get("enabled", True))), "config_json": cfg,
                "created_at": cfg["created_at"], "updated_at": cfg["updated_at"]}

    def insert(self, cfg: dict[str, Any]) -> None:
        self.db.insert("patches", self._row(cfg))

    def save(self, cfg: dict[str, Any]) -> None:
        row = self._row(cfg)
        pid = row.pop("id")
        self.db.update("patches", {"id": pid}, row)

    def list(self) -> list[dict[str, Any]]:
        """Every stored config, oldest first."""
        return [r["config_json"] for r in self.db.query("SELECT config_json FROM patches ORDER BY created_at")]

    def delete(self, patch_id: str) -> None:
        self.db.delete("patches", id=patch_id)
