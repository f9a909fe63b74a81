"""The ``jobs`` table: background jobs that are not training runs or analyses (explanations, ...).

A job is resumable: its config is stored, and the work it finished lives with its results (e.g. the
explanation on each feature row), so a resumed job skips what is done.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .db import Database


@dataclass
class JobRecord:
    id: str
    kind: str
    """What the job does, e.g. ``explain``."""
    subject: str | None
    """What it works on (an SAE id)."""
    status: str
    """queued | running | done | failed | cancelled | interrupted."""
    config: dict[str, Any]
    created_at: float
    updated_at: float
    done: int = 0
    total: int = 0
    errors: int = 0
    """Units that finished with a recorded error (the job went on)."""
    error: str | None = None
    """Why the job itself failed."""
    extra: dict[str, Any] = field(default_factory=dict)


def _record(r: dict[str, Any]) -> JobRecord:
    return JobRecord(id=r["id"], kind=r["kind"], subject=r["subject"], status=r["status"], config=r["config_json"] or {},
                     created_at=r["created_at"], updated_at=r["updated_at"], done=r["done"] or 0,
                     total=r["total"] or 0, errors=r["errors"] or 0, error=r["error"])


_COLUMNS = {"status", "done", "total", "errors", "error"}


class JobRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, job_id: str, kind: str, subject: str | None, config: dict[str, Any]) -> JobRecord:
        t = time.time()
        self.db.insert("jobs", {"id": job_id, "kind": kind, "subject": subject, "status": "queued",
                                "config_json": config, "created_at": t, "updated_at": t})
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> JobRecord | None:
        row = self.db.get("jobs", id=job_id)
        return None if row is None else _record(row)

    def latest(self, kind: str, subject: str) -> JobRecord | None:
        rows = self.db.query("SELECT * FROM jobs WHERE kind = ? AND subject = ? ORDER BY created_at DESC LIMIT 1",
                             (kind, subject))
        return _record(rows[0]) if rows else None

    def update(self, job_id: str, **values: Any) -> None:
        bad = set(values) - _COLUMNS
        if bad:
            raise ValueError(f"unknown job fields {sorted(bad)}")
        self.db.update("jobs", {"id": job_id}, {**values, "updated_at": time.time()})

    def interrupt_live(self) -> int:
        """Mark jobs left queued/running by a stopped process as interrupted; returns how many."""
        return self.db.execute("UPDATE jobs SET status = 'interrupted', updated_at = ? "
                               "WHERE status IN ('queued', 'running')", (time.time(),)).rowcount
