"""The ``saes`` table: SAE artifacts known to the workbench (the folders live under the workspace)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .db import Database


@dataclass
class SAERecord:
    id: str
    name: str
    model_id: str
    """Base model the SAE reads."""
    hook_name: str
    layer: int
    d_in: int
    d_sae: int
    architecture: str
    path: str
    """SAELens folder in the workspace."""
    source: str
    """trained | imported."""
    created_at: float
    run_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    """Final training metrics."""
    kind: str = "sae"
    """sae (reads and rebuilds one activation) or transcoder (reads an MLP's input, predicts its output)."""
    set_id: str | None = None
    """Transcoder set the entry belongs to (``transcoder_sets``), for kind transcoder."""


def _record(row: dict[str, Any]) -> SAERecord:
    row = dict(row)
    row["metrics"] = row.pop("metrics_json") or {}
    return SAERecord(**row)


class SAERepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, rec: SAERecord) -> None:
        row = asdict(rec)
        row["metrics_json"] = row.pop("metrics")
        self.db.insert("saes", row)

    def get(self, sae_id: str) -> SAERecord | None:
        row = self.db.get("saes", id=sae_id)
        return None if row is None else _record(row)

    def list(self) -> list[SAERecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM saes ORDER BY created_at")]

    def of_model_below(self, model_id: str, layer: int, exclude: str | None = None) -> list[SAERecord]:
        """SAEs of ``model_id`` reading a block below ``layer`` (for upstream provenance; transcoders excluded)."""
        rows = self.db.query("SELECT * FROM saes WHERE model_id = ? AND layer < ? AND id != ? AND kind = 'sae' "
                             "ORDER BY created_at", (model_id, layer, exclude or ""))
        return [_record(r) for r in rows]

    def of_set(self, set_id: str) -> list[SAERecord]:
        """The transcoders of a set, by layer."""
        return [_record(r) for r in self.db.query("SELECT * FROM saes WHERE set_id = ? ORDER BY layer", (set_id,))]

    def update_metrics(self, sae_id: str, metrics: dict[str, Any]) -> None:
        self.db.update("saes", {"id": sae_id}, {"metrics_json": metrics})

    def delete(self, sae_id: str) -> None:
        self.db.delete("saes", id=sae_id)
