"""The ``runs`` and ``metrics`` tables: training runs and their metric history."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .db import Database

LIVE = ("queued", "running")


@dataclass
class RunRecord:
    id: str
    model_id: str
    status: str
    """queued | running | done | failed | cancelled | interrupted."""
    config: dict[str, Any]
    """The TrainingConfig as a dict."""
    created_at: float
    updated_at: float
    step: int = 0
    tokens_seen: int = 0
    metrics: dict[str, Any] | None = None
    """Final metrics (done): ``sae_ids``, ``members`` (one per SAE: hook, hyperparameters, metrics) and the run-level summary."""
    error: str | None = None
    sae_id: str | None = None
    """First SAE produced (runs over several hooks list all in ``metrics['sae_ids']``)."""
    checkpoint_path: str | None = None

    @property
    def sae_ids(self) -> list[str]:
        return list((self.metrics or {}).get("sae_ids", []))


@dataclass
class MetricPoint:
    step: int
    tokens: int
    data: dict[str, Any] = field(default_factory=dict)


def _record(row: dict[str, Any]) -> RunRecord:
    return RunRecord(id=row["id"], model_id=row["model_id"], status=row["status"], config=row["config_json"] or {},
                     created_at=row["created_at"], updated_at=row["updated_at"], step=row["step"] or 0,
                     tokens_seen=row["tokens_seen"] or 0, metrics=row["metrics_json"], error=row["error"],
                     sae_id=row["sae_id"], checkpoint_path=row["checkpoint_path"])


_COLUMNS = {"status", "step", "tokens_seen", "metrics", "error", "sae_id", "checkpoint_path"}


class RunRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, run_id: str, model_id: str, config: dict[str, Any], status: str = "queued") -> RunRecord:
        t = time.time()
        self.db.insert("runs", {"id": run_id, "model_id": model_id, "status": status, "config_json": config,
                                "created_at": t, "updated_at": t})
        return self.get(run_id)  # type: ignore[return-value]

    def get(self, run_id: str) -> RunRecord | None:
        row = self.db.get("runs", id=run_id)
        return None if row is None else _record(row)

    def list(self) -> list[RunRecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM runs ORDER BY created_at DESC")]

    def update(self, run_id: str, **values: Any) -> None:
        """Set any of status, step, tokens_seen, metrics, error, sae_id, checkpoint_path (and updated_at)."""
        bad = set(values) - _COLUMNS
        if bad:
            raise ValueError(f"unknown run fields {sorted(bad)}")
        row = {("metrics_json" if k == "metrics" else k): v for k, v in values.items()}
        row["updated_at"] = time.time()
        self.db.update("runs", {"id": run_id}, row)

    def interrupt_live(self) -> int:
        """Mark runs left queued/running by a stopped process as interrupted; returns how many."""
        return self.db.execute("UPDATE runs SET status = 'interrupted', updated_at = ? WHERE status IN (?, ?)",
                               (time.time(), *LIVE)).rowcount

    def add_metric(self, run_id: str, step: int, tokens: int, data: dict[str, Any]) -> None:
        self.db.insert("metrics", {"run_id": run_id, "step": step, "tokens": tokens, "data_json": data},
                       replace=True)

    def history(self, run_id: str, limit: int = 2000) -> list[MetricPoint]:
        """Metric history by step, thinned evenly to at most ``limit`` points (the last always kept)."""
        rows = self.db.query("SELECT step, tokens, data_json FROM metrics WHERE run_id = ? ORDER BY step", (run_id,))
        if len(rows) > limit:
            stride = -(-len(rows) // limit)
            rows = rows[::stride] + ([rows[-1]] if (len(rows) - 1) % stride else [])
        return [MetricPoint(r["step"], r["tokens"], r["data_json"] or {}) for r in rows]
