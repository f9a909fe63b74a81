"""The ``analyses`` and ``features`` tables: one analysis row per SAE, one row per analysed feature, with
the feature's latest natural-language explanation and its scores on the same row.

A feature's displayed label is the user's label when set, else the automatic one (``display_label``);
that rule lives here once, in Python and in SQL. An explanation never replaces the user's label.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .db import Database, now

_DISPLAY_LABEL = "COALESCE(NULLIF(label, ''), auto_label, '')"
SORT_KEYS = {
    "index": "idx", "density": "density", "max_act": "max_act", "max_activation": "max_act",
    "mean_act": "mean_act", "mean_activation": "mean_act", "label": _DISPLAY_LABEL, "starred": "starred",
    "detection": "detection", "fuzzing": "fuzzing", "consistency": "consistency",
}
"""Sort names the feature list accepts (prefix '-' to descend), mapped to SQL."""
_SUMMARY_COLS = ("sae_id, idx, label, auto_label, notes, starred, density, max_act, mean_act, top_tokens_json, "
                 "explanation, explanation_json, detection, fuzzing, consistency, degenerate")
_UPSERT = """
INSERT INTO features (sae_id, idx, auto_label, density, max_act, mean_act, top_tokens_json, data_json, consistency,
  degenerate)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(sae_id, idx) DO UPDATE SET auto_label = excluded.auto_label, density = excluded.density,
  max_act = excluded.max_act, mean_act = excluded.mean_act, top_tokens_json = excluded.top_tokens_json,
  data_json = excluded.data_json, consistency = excluded.consistency, degenerate = excluded.degenerate
"""


@dataclass
class AnalysisRecord:
    sae_id: str
    status: str
    """running | done | failed | cancelled."""
    created_at: float
    updated_at: float
    n_tokens: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """The summary when done; ``{"error": ...}`` when failed or cancelled."""


@dataclass
class Explanation:
    """A feature's latest explanation (``features/explain``) and its balanced-accuracy scores."""

    text: str | None
    """The explanation (None when the explainer failed)."""
    explainer_name: str
    prompt_version: str
    detection: float | None = None
    fuzzing: float | None = None
    scorer_name: str | None = None
    error: str | None = None
    error_kind: str | None = None
    created_at: float = 0.0

    def meta(self) -> dict[str, Any]:
        return {"explainer_name": self.explainer_name, "prompt_version": self.prompt_version,
                "scorer_name": self.scorer_name, "error": self.error, "error_kind": self.error_kind,
                "created_at": self.created_at}


@dataclass
class FeatureRow:
    sae_id: str
    idx: int
    label: str | None = None
    """The user's label (None: none set)."""
    auto_label: str | None = None
    notes: str = ""
    starred: bool = False
    density: float | None = None
    max_act: float | None = None
    mean_act: float | None = None
    top_tokens: list[dict[str, Any]] = field(default_factory=list)
    """Peak tokens of the top contexts: ``{token, id, count, key}``, most frequent first."""
    data: dict[str, Any] | None = None
    """Everything else the analysis stored (contexts, quantiles, histograms, logits, neighbours)."""
    explanation: Explanation | None = None
    """The latest natural-language explanation with its scores (``features/explanations.py``)."""
    consistency: float | None = None
    """Agreement of the top contexts on a non-whitespace peak token, 0..1 (``features/labels.consistency``); None
    before an analysis that computes it."""
    degenerate: bool | None = None
    """At least half of the top contexts peak on whitespace (``features/labels.is_degenerate``); None when not
    computed."""

    @property
    def display_label(self) -> str:
        return self.label or self.auto_label or ""


@dataclass
class FeatureLabel:
    label: str | None
    """The display label (None when the feature has no row yet)."""
    top_tokens: list[str]


@dataclass
class AnalysedFeature:
    """What an analysis writes for one feature (user fields are left alone)."""

    idx: int
    auto_label: str
    density: float
    max_act: float
    mean_act: float
    top_tokens: list[dict[str, Any]]
    data: dict[str, Any]
    consistency: float | None = None
    """Sort score (``features/labels.consistency``)."""
    degenerate: bool | None = None
    """Mostly whitespace peaks (``features/labels.is_degenerate``)."""


@dataclass
class FeatureFilter:
    token_key: str | None = None
    """Features whose top contexts peak on this token key."""
    starred: bool = False
    text: str | None = None
    """Case-insensitive substring of the label, automatic label, notes or explanation."""
    hide_degenerate: bool = False
    """Leave out degenerate features (rows analysed before the flag existed are kept)."""


def _explanation(r: dict[str, Any]) -> Explanation | None:
    meta = r.get("explanation_json")
    if not meta:
        return None
    return Explanation(r.get("explanation"), meta.get("explainer_name", ""), meta.get("prompt_version", ""),
                       r.get("detection"), r.get("fuzzing"), meta.get("scorer_name"), meta.get("error"),
                       meta.get("error_kind"), meta.get("created_at", 0.0))


def _row(r: dict[str, Any]) -> FeatureRow:
    return FeatureRow(sae_id=r["sae_id"], idx=r["idx"], label=r.get("label") or None, auto_label=r.get("auto_label"),
                      notes=r.get("notes") or "", starred=bool(r.get("starred")), density=r.get("density"),
                      max_act=r.get("max_act"), mean_act=r.get("mean_act"), top_tokens=r.get("top_tokens_json") or [],
                      data=r.get("data_json"), explanation=_explanation(r), consistency=r.get("consistency"),
                      degenerate=None if r.get("degenerate") is None else bool(r["degenerate"]))


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class FeatureRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # analyses ---------------------------------------------------------------------------------
    def get_analysis(self, sae_id: str) -> AnalysisRecord | None:
        row = self.db.get("analyses", sae_id=sae_id)
        if row is None:
            return None
        return AnalysisRecord(row["sae_id"], row["status"], row["created_at"], row["updated_at"], row["n_tokens"],
                              row["data_json"] or {})

    def start_analysis(self, sae_id: str, data: dict[str, Any]) -> None:
        old = self.get_analysis(sae_id)
        t = now()
        self.db.insert("analyses", {"sae_id": sae_id, "status": "running", "n_tokens": None, "path": None,
                                    "data_json": data, "created_at": old.created_at if old else t, "updated_at": t},
                       replace=True)

    def finish_analysis(self, sae_id: str, status: str, data: dict[str, Any], n_tokens: int | None = None) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": now(), "data_json": data}
        if n_tokens is not None:
            values["n_tokens"] = n_tokens
        self.db.update("analyses", {"sae_id": sae_id}, values)

    def fail_running(self, reason: str) -> int:
        """Mark analyses left running by a stopped process as failed; returns how many."""
        return self.db.execute("UPDATE analyses SET status = 'failed', data_json = ? WHERE status = 'running'",
                               [json.dumps({"error": reason})]).rowcount

    # features ----------------------------------------------------------------------------------
    def upsert_analysed(self, sae_id: str, rows: Iterable[AnalysedFeature]) -> None:
        self.db.executemany(_UPSERT, ((sae_id, r.idx, r.auto_label, r.density, r.max_act, r.mean_act,
                                       json.dumps(r.top_tokens), json.dumps(r.data), r.consistency,
                                       None if r.degenerate is None else int(r.degenerate)) for r in rows))

    def get(self, sae_id: str, idx: int) -> FeatureRow | None:
        row = self.db.get("features", sae_id=sae_id, idx=idx)
        return None if row is None else _row(row)

    def count(self, sae_id: str) -> int:
        return int(self.db.query_one("SELECT COUNT(*) AS n FROM features WHERE sae_id = ?", [sae_id])["n"])  # type: ignore[index]

    def page(self, sae_id: str, *, offset: int, limit: int, sort: str, flt: FeatureFilter) -> tuple[list[FeatureRow], int]:
        """(rows without ``data``, total matching). ``sort`` is a key of ``SORT_KEYS``, '-' prefix descends;
        rows never analysed sort last."""
        desc = sort.startswith("-")
        col = SORT_KEYS[sort.lstrip("-")]
        where, params = ["sae_id = ?"], [sae_id]
        if flt.token_key:
            where.append("EXISTS (SELECT 1 FROM json_each(features.top_tokens_json) AS je "
                         "WHERE json_extract(je.value, '$.key') = ?)")
            params.append(flt.token_key)
        if flt.starred:
            where.append("starred = 1")
        if flt.hide_degenerate:
            where.append("COALESCE(degenerate, 0) = 0")
        if flt.text:
            where.append("(label LIKE ? ESCAPE '\\' OR auto_label LIKE ? ESCAPE '\\' OR notes LIKE ? ESCAPE '\\' "
                         "OR explanation LIKE ? ESCAPE '\\')")
            params += [_like(flt.text)] * 4
        cond = " AND ".join(where)
        total = self.db.query_one(f"SELECT COUNT(*) AS n FROM features WHERE {cond}", params)["n"]  # type: ignore[index]
        nulls = f"CASE WHEN {col} IS NULL THEN 1 ELSE 0 END, "
        # many features tie on consistency (1: every top context peaks on one word; on SmolLM2 layer 6 the
        # densest eight of them all peak on '.'): within a tie, the commonest feature of each top token comes
        # before any second feature of the same token, then the commoner first
        then = ("ROW_NUMBER() OVER (PARTITION BY consistency, json_extract(top_tokens_json, '$[0].key') "
                "ORDER BY density DESC, idx ASC), density DESC, ") if col == "consistency" else ""
        rows = self.db.query(
            f"SELECT {_SUMMARY_COLS} FROM features WHERE {cond} ORDER BY {nulls}{col} {'DESC' if desc else 'ASC'}, "
            f"{then}idx ASC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_row(r) for r in rows], int(total)

    def mean_activations(self, sae_id: str, indices: list[int]) -> dict[int, float]:
        """Mean activation when active of the given analysed features (features never active are left out)."""
        if not indices:
            return {}
        rows = self.db.query(f"SELECT idx, mean_act FROM features WHERE sae_id = ? AND idx IN "
                             f"({','.join('?' * len(indices))}) AND mean_act > 0", [sae_id, *indices])
        return {int(r["idx"]): float(r["mean_act"]) for r in rows}

    def labels(self, sae_id: str, indices: list[int] | None = None) -> dict[int, FeatureLabel]:
        """Display label and top tokens of the given features (all analysed ones when ``indices`` is None)."""
        sql = f"SELECT idx, {_DISPLAY_LABEL} AS l, top_tokens_json FROM features WHERE sae_id = ?"
        params: list[Any] = [sae_id]
        if indices is not None:
            if not indices:
                return {}
            sql += f" AND idx IN ({','.join('?' * len(indices))})"
            params += list(indices)
        out = {}
        for r in self.db.query(sql, params):
            toks = [str(t["token"]) for t in (r.get("top_tokens_json") or []) if isinstance(t, dict) and "token" in t]
            out[int(r["idx"])] = FeatureLabel(r["l"] or None, toks)
        return out

    def densities(self, sae_id: str) -> dict[int, float]:
        """Firing density of every analysed feature of the SAE (features without a measured density left out)."""
        return {int(r["idx"]): float(r["density"]) for r in self.db.query(
            "SELECT idx, density FROM features WHERE sae_id = ? AND density IS NOT NULL", (sae_id,))}

    def set_user_fields(self, sae_id: str, idx: int, *, label: str | None = None, notes: str | None = None,
                        starred: bool | None = None) -> None:
        """The user's label (empty string clears it), notes and star; creates the row if needed."""
        values: dict[str, Any] = {}
        if label is not None:
            values["label"] = label.strip() or None
        if notes is not None:
            values["notes"] = notes
        if starred is not None:
            values["starred"] = int(starred)
        if self.db.get("features", sae_id=sae_id, idx=idx) is None:
            self.db.insert("features", {"sae_id": sae_id, "idx": idx, **values})
        elif values:
            self.db.update("features", {"sae_id": sae_id, "idx": idx}, values)

    def set_explanation(self, sae_id: str, idx: int, e: Explanation) -> None:
        """Store ``e`` as the feature's latest explanation (creating the row if needed)."""
        values = {"explanation": e.text, "explanation_json": e.meta(), "detection": e.detection,
                  "fuzzing": e.fuzzing}
        if self.db.get("features", sae_id=sae_id, idx=idx) is None:
            self.db.insert("features", {"sae_id": sae_id, "idx": idx, **values})
        else:
            self.db.update("features", {"sae_id": sae_id, "idx": idx}, values)

    def explained(self, sae_id: str, explainer_name: str, prompt_version: str, *,
                  since: float | None = None) -> set[int]:
        """Features whose latest explanation came from this explainer and prompt version (for resuming);
        ``since``: only those stored at or after these Unix seconds (resuming a forced job)."""
        sql = ("SELECT idx FROM features WHERE sae_id = ? AND explanation_json IS NOT NULL AND "
               "json_extract(explanation_json, '$.explainer_name') = ? AND "
               "json_extract(explanation_json, '$.prompt_version') = ?")
        params: list[Any] = [sae_id, explainer_name, prompt_version]
        if since is not None:
            sql += " AND json_extract(explanation_json, '$.created_at') >= ?"
            params.append(since)
        rows = self.db.query(sql, params)
        return {int(r["idx"]) for r in rows}

    def indices(self, sae_id: str) -> list[int]:
        """Analysed features of the SAE, by index."""
        return [int(r["idx"]) for r in self.db.query(
            "SELECT idx FROM features WHERE sae_id = ? AND data_json IS NOT NULL ORDER BY idx", (sae_id,))]

    def iter_rows(self, sae_id: str, chunk: int = 256) -> Iterator[FeatureRow]:
        """Every row of the SAE with its data, by index, ``chunk`` at a time."""
        n = self.count(sae_id)
        for lo in range(0, n, chunk):
            for r in self.db.query("SELECT * FROM features WHERE sae_id = ? ORDER BY idx LIMIT ? OFFSET ?",
                                   [sae_id, chunk, lo]):
                yield _row(r)

    def delete_sae(self, sae_id: str) -> None:
        self.db.delete("features", sae_id=sae_id)
        self.db.delete("analyses", sae_id=sae_id)
