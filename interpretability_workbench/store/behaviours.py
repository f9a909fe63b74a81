"""The ``behaviour_jobs`` and ``behaviour_candidates`` tables: behaviour-removal search jobs (request, phase,
resumable state, final report) and every candidate each one evaluated, in evaluation order."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .db import Database

LIVE = ("queued", "running")


@dataclass
class BehaviourJobRecord:
    id: str
    """Job id (``bjob_<hex>``)."""
    model_id: str
    """Model the job searches on; resuming needs it loaded."""
    status: str
    """queued | running | done | failed | cancelled | interrupted."""
    phase: str
    """queued | training | ranking | searching | finalising | done."""
    request: dict[str, Any]
    """The search request (``behaviour.types.SearchRequest.to_dict()``)."""
    created_at: float
    updated_at: float
    state: dict[str, Any] = field(default_factory=dict)
    """What a resumed job reuses: the training run it started, the feature rankings, patches created."""
    result: dict[str, Any] | None = None
    """The final report (done)."""
    error: str | None = None
    n_evaluated: int = 0
    """Candidates evaluated so far (all attempts)."""
    attempt: int = 0
    """0 for the first run, +1 per resume."""


@dataclass
class CandidateRecord:
    job_id: str
    index: int
    """Evaluation order within the job (0, 1, ...)."""
    key: str
    """Canonical description of the edits (what makes two candidates the same)."""
    stage: str
    """Search stage that proposed it (screen, refine, prune, combine)."""
    attempt: int
    """Which attempt of the job evaluated it (a resumed job keeps the earlier ones)."""
    data: dict[str, Any]
    """The candidate (``behaviour.types.Candidate.to_dict()``)."""
    created_at: float


def _job(row: dict[str, Any]) -> BehaviourJobRecord:
    return BehaviourJobRecord(id=row["id"], model_id=row["model_id"], status=row["status"], phase=row["phase"],
                              request=row["request_json"], created_at=row["created_at"],
                              updated_at=row["updated_at"], state=row["state_json"] or {},
                              result=row["result_json"], error=row["error"], n_evaluated=row["n_evaluated"],
                              attempt=row["attempt"])


def _candidate(row: dict[str, Any]) -> CandidateRecord:
    return CandidateRecord(job_id=row["job_id"], index=row["idx"], key=row["key"], stage=row["stage"],
                           attempt=row["attempt"], data=row["data_json"], created_at=row["created_at"])


_COLUMNS = {"status", "phase", "state", "result", "error", "n_evaluated", "attempt"}
_JSON = {"state": "state_json", "result": "result_json"}


class BehaviourRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, job_id: str, model_id: str, request: dict[str, Any]) -> BehaviourJobRecord:
        t = time.time()
        self.db.insert("behaviour_jobs", {"id": job_id, "model_id": model_id, "status": "queued", "phase": "queued",
                                          "request_json": request, "state_json": {}, "created_at": t,
                                          "updated_at": t})
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> BehaviourJobRecord | None:
        row = self.db.get("behaviour_jobs", id=job_id)
        return None if row is None else _job(row)

    def list(self) -> list[BehaviourJobRecord]:
        return [_job(r) for r in self.db.query("SELECT * FROM behaviour_jobs ORDER BY created_at DESC")]

    def update(self, job_id: str, **values: Any) -> None:
        """Set any of status, phase, state, result, error, n_evaluated, attempt (and updated_at)."""
        bad = set(values) - _COLUMNS
        if bad:
            raise ValueError(f"unknown behaviour job fields {sorted(bad)}")
        row = {_JSON.get(k, k): v for k, v in values.items()}
        row["updated_at"] = time.time()
        self.db.update("behaviour_jobs", {"id": job_id}, row)

    def interrupt_live(self) -> int:
        """Mark jobs left queued/running by a stopped process as interrupted; returns how many."""
        return self.db.execute("UPDATE behaviour_jobs SET status = 'interrupted', updated_at = ? "
                               "WHERE status IN (?, ?)", (time.time(), *LIVE)).rowcount

    def delete(self, job_id: str) -> None:
        """The job and its candidates."""
        self.db.delete("behaviour_candidates", job_id=job_id)
        self.db.delete("behaviour_jobs", id=job_id)

    # candidates ------------------------------------------------------------------------
    def add_candidate(self, rec: CandidateRecord) -> None:
        """Store one evaluated candidate, then the job's count (a resumed job recounts from the rows)."""
        self.db.insert("behaviour_candidates", {"job_id": rec.job_id, "idx": rec.index, "key": rec.key,
                                                "stage": rec.stage, "attempt": rec.attempt, "data_json": rec.data,
                                                "created_at": rec.created_at})
        self.update(rec.job_id, n_evaluated=rec.index + 1)

    def candidates(self, job_id: str) -> list[CandidateRecord]:
        """Every candidate of the job in evaluation order."""
        return [_candidate(r) for r in self.db.query(
            "SELECT * FROM behaviour_candidates WHERE job_id = ? ORDER BY idx", (job_id,))]
