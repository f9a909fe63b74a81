"""The ``circuits`` table: attribution graphs traced on a prompt (the graph itself is a folder under the
workspace: ``graph.json`` + ``graph.safetensors``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .db import Database

LIVE = ("queued", "running")


@dataclass
class CircuitRecord:
    id: str
    model_id: str
    """Model the graph was traced on."""
    set_id: str
    """Transcoder set it was traced with."""
    prompt: str
    """The prompt as given."""
    status: str
    """queued | running | done | failed | cancelled."""
    settings: dict[str, Any]
    """Attribution and pruning settings the graph was traced with."""
    created_at: float
    updated_at: float
    summary: dict[str, Any] = field(default_factory=dict)
    """Scores, timings, sizes and the intervention check, once done."""
    path: str | None = None
    """Graph folder in the workspace."""
    error: str | None = None


def _record(row: dict[str, Any]) -> CircuitRecord:
    row = dict(row)
    row["settings"] = row.pop("settings_json") or {}
    row["summary"] = row.pop("summary_json") or {}
    return CircuitRecord(**row)


_COLUMNS = {"status", "summary", "path", "error"}


class CircuitRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, circuit_id: str, model_id: str, set_id: str, prompt: str, settings: dict[str, Any]) -> CircuitRecord:
        t = time.time()
        self.db.insert("circuits", {"id": circuit_id, "model_id": model_id, "set_id": set_id, "prompt": prompt,
                                    "status": "queued", "settings_json": settings, "created_at": t, "updated_at": t})
        return self.get(circuit_id)  # type: ignore[return-value]

    def get(self, circuit_id: str) -> CircuitRecord | None:
        row = self.db.get("circuits", id=circuit_id)
        return None if row is None else _record(row)

    def list(self) -> list[CircuitRecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM circuits ORDER BY created_at DESC")]

    def update(self, circuit_id: str, **values: Any) -> None:
        """Set any of status, summary, path, error (and updated_at)."""
        bad = set(values) - _COLUMNS
        if bad:
            raise ValueError(f"unknown circuit fields {sorted(bad)}")
        row = {("summary_json" if k == "summary" else k): v for k, v in values.items()}
        row["updated_at"] = time.time()
        self.db.update("circuits", {"id": circuit_id}, row)

    def interrupt_live(self) -> int:
        """Mark graphs left queued/running by a stopped process as failed; returns how many."""
        return self.db.execute("UPDATE circuits SET status = 'failed', error = 'interrupted: the workbench stopped', "
                               "updated_at = ? WHERE status IN (?, ?)", (time.time(), *LIVE)).rowcount

    def delete(self, circuit_id: str) -> None:
        self.db.delete("circuits", id=circuit_id)
