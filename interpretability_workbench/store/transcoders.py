"""The ``transcoder_sets`` table: transcoder sets (one transcoder per layer of a model). Each member is an
entry of the ``saes`` table with ``kind = 'transcoder'`` and this set's id, so features, labels, analyses
and exports work on transcoder features exactly as on SAE features."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .db import Database


@dataclass
class TranscoderSetRecord:
    id: str
    name: str
    model_id: str
    """Base model the transcoders read."""
    scan: str
    """Set identifier for viewers (circuit-tracer's / Neuronpedia's ``scan``)."""
    layers: list[int]
    """Layers that have a transcoder."""
    architecture: str
    """topk, jumprelu or relu (of the members)."""
    d_tc: int
    """Latents per transcoder."""
    skip: bool
    """Members have a linear skip term."""
    source: str
    """trained | imported."""
    created_at: float
    run_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    """Training metrics (FVU per layer, CE loss recovered with every MLP replaced, ...)."""


def _record(row: dict[str, Any]) -> TranscoderSetRecord:
    row = dict(row)
    row["layers"] = row.pop("layers_json") or []
    row["metrics"] = row.pop("metrics_json") or {}
    row["skip"] = bool(row["skip"])
    return TranscoderSetRecord(**row)


class TranscoderSetRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, rec: TranscoderSetRecord) -> None:
        row = asdict(rec)
        row["layers_json"] = row.pop("layers")
        row["metrics_json"] = row.pop("metrics")
        row["skip"] = int(row["skip"])
        self.db.insert("transcoder_sets", row)

    def get(self, set_id: str) -> TranscoderSetRecord | None:
        row = self.db.get("transcoder_sets", id=set_id)
        return None if row is None else _record(row)

    def list(self) -> list[TranscoderSetRecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM transcoder_sets ORDER BY created_at")]

    def delete(self, set_id: str) -> None:
        self.db.delete("transcoder_sets", id=set_id)
