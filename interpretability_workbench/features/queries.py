"""Reading and editing stored feature rows: paged search/sort, full detail, user labels, export.

A feature's displayed ``label`` is the user's label when set, else the automatic one; both are kept
(``user_label``, ``auto_label``). Search ``q``: ``token:<tok>`` matches features whose top contexts peak
on that token (compared stripped and lower-cased), ``is:starred`` the starred ones, anything else is a
case-insensitive substring of the label, automatic label or notes.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import Invalid, NotFound
from .labels import token_key

if TYPE_CHECKING:  # pragma: no cover
    from ..state import WorkbenchState

_DISPLAY_LABEL = "COALESCE(NULLIF(label, ''), auto_label, '')"
SORT_COLUMNS = {
    "index": "idx", "density": "density", "max_act": "max_act", "max_activation": "max_act",
    "mean_act": "mean_act", "mean_activation": "mean_act", "label": _DISPLAY_LABEL, "starred": "starred",
}
MAX_LIMIT = 500
_SUMMARY_COLS = "idx, label, auto_label, starred, density, max_act, mean_act, top_tokens_json"


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def summary(row: dict[str, Any]) -> dict[str, Any]:
    user = row.get("label") or None
    return {
        "index": row["idx"], "label": user or row.get("auto_label") or "", "auto_label": row.get("auto_label"),
        "user_label": user, "density": row.get("density"), "max_activation": row.get("max_act"),
        "mean_activation": row.get("mean_act"), "starred": bool(row.get("starred")),
        "top_tokens": [t["token"] for t in (row.get("top_tokens_json") or [])],
    }


class FeatureQueries:
    def __init__(self, state: "WorkbenchState") -> None:
        self.state = state
        self.db = state.db

    def _d_sae(self, sae_id: str) -> int:
        row = self.db.get("saes", id=sae_id)
        if row is None:
            raise NotFound(f"SAE {sae_id!r} not found; GET /api/saes lists them")
        return int(row["d_sae"])

    def _check_index(self, sae_id: str, index: int) -> None:
        d_sae = self._d_sae(sae_id)
        if not 0 <= index < d_sae:
            raise NotFound(f"feature {index} does not exist: SAE {sae_id} has features 0..{d_sae - 1}")

    def labels(self, sae_id: str, indices: list[int] | None = None) -> dict[int, str]:
        sql = f"SELECT idx, {_DISPLAY_LABEL} AS l FROM features WHERE sae_id = ?"
        params: list[Any] = [sae_id]
        if indices is not None:
            if not indices:
                return {}
            sql += f" AND idx IN ({','.join('?' * len(indices))})"
            params += indices
        return {r["idx"]: r["l"] for r in self.db.query(sql, params)}

    def list(self, sae_id: str, *, offset: int = 0, limit: int = 50, sort: str = "index",
             q: str | None = None) -> dict[str, Any]:
        self._d_sae(sae_id)
        if offset < 0 or not 1 <= limit <= MAX_LIMIT:
            raise Invalid(f"need offset >= 0 and 1 <= limit <= {MAX_LIMIT}")
        desc = sort.startswith("-")
        col = SORT_COLUMNS.get(sort.lstrip("-"))
        if col is None:
            raise Invalid(f"unknown sort {sort!r}; use one of {', '.join(SORT_COLUMNS)} (prefix '-' to descend)")
        where, params = ["sae_id = ?"], [sae_id]
        q = (q or "").strip()
        if q.lower().startswith("token:"):
            key = token_key(q[6:])
            if not key:
                raise Invalid("token: needs a token, e.g. token:return")
            where.append("EXISTS (SELECT 1 FROM json_each(features.top_tokens_json) AS je "
                         "WHERE json_extract(je.value, '$.key') = ?)")
            params.append(key)
        elif q.lower() == "is:starred":
            where.append("starred = 1")
        elif q:
            where.append("(label LIKE ? ESCAPE '\\' OR auto_label LIKE ? ESCAPE '\\' OR notes LIKE ? ESCAPE '\\')")
            params += [_like(q)] * 3
        cond = " AND ".join(where)
        total = self.db.query_one(f"SELECT COUNT(*) AS n FROM features WHERE {cond}", params)["n"]  # type: ignore[index]
        nulls = "CASE WHEN {c} IS NULL THEN 1 ELSE 0 END, ".format(c=col)  # unanalysed rows last
        rows = self.db.query(
            f"SELECT {_SUMMARY_COLS} FROM features WHERE {cond} ORDER BY {nulls}{col} {'DESC' if desc else 'ASC'}, "
            f"idx ASC LIMIT ? OFFSET ?", [*params, limit, offset])
        return {"items": [summary(r) for r in rows], "total": total, "offset": offset, "limit": limit}

    def get(self, sae_id: str, index: int) -> dict[str, Any]:
        self._check_index(sae_id, index)
        row = self.db.get("features", sae_id=sae_id, idx=index)
        if row is None:
            raise NotFound(f"feature {index} of SAE {sae_id} has not been analysed yet; "
                           f"POST /api/saes/{sae_id}/analysis to analyse it")
        return self._detail(sae_id, row)

    def _detail(self, sae_id: str, row: dict[str, Any]) -> dict[str, Any]:
        data = row.get("data_json") or {}
        logits = data.get("logits") or {}
        neigh = data.get("neighbours") or []
        coact = data.get("coactive")
        names = self.labels(sae_id, sorted({n["index"] for n in neigh + (coact or [])}))

        def named(items: list[dict]) -> list[dict]:
            return [{"index": n["index"], "label": names.get(n["index"], ""), "score": n["score"]} for n in items]

        return {
            **summary(row), "notes": row.get("notes") or "", "analysed": bool(data),
            "top_contexts": data.get("top_contexts") or [],
            "quantiles": data.get("quantiles") or [],
            "histogram": data.get("histogram") or {"edges": [], "counts": []},
            "logit_histogram": logits.get("histogram"),
            "top_positive_logits": logits.get("positive") or [],
            "top_negative_logits": logits.get("negative") or [],
            "neighbours": named(neigh), "coactive": None if coact is None else named(coact),
            "top_token_counts": row.get("top_tokens_json") or [],
        }

    def update(self, sae_id: str, index: int, *, label: str | None = None, notes: str | None = None,
               starred: bool | None = None) -> dict[str, Any]:
        """Persist the user's label / notes / star (an empty label restores the automatic one)."""
        self._check_index(sae_id, index)
        values: dict[str, Any] = {}
        if label is not None:
            values["label"] = label.strip() or None
        if notes is not None:
            values["notes"] = notes
        if starred is not None:
            values["starred"] = int(starred)
        if self.db.get("features", sae_id=sae_id, idx=index) is None:
            self.db.insert("features", {"sae_id": sae_id, "idx": index, **values})
        elif values:
            self.db.update("features", {"sae_id": sae_id, "idx": index}, values)
        return self._detail(sae_id, self.db.get("features", sae_id=sae_id, idx=index))  # type: ignore[arg-type]

    def export(self, sae_id: str, chunk: int = 256) -> Iterator[str]:
        """JSON lines, one feature a line, in the spirit of Neuronpedia's feature rows."""
        sae = self.db.get("saes", id=sae_id)
        if sae is None:
            raise NotFound(f"SAE {sae_id!r} not found; GET /api/saes lists them")
        n = self.db.query_one("SELECT COUNT(*) AS n FROM features WHERE sae_id = ?", [sae_id])["n"]  # type: ignore[index]
        if n == 0:
            raise NotFound(f"SAE {sae_id} has no analysed features; POST /api/saes/{sae_id}/analysis first")

        def lines() -> Iterator[str]:
            for lo in range(0, n, chunk):
                for row in self.db.query("SELECT * FROM features WHERE sae_id = ? ORDER BY idx LIMIT ? OFFSET ?",
                                         [sae_id, chunk, lo]):
                    yield json.dumps(export_row(sae, row)) + "\n"
        return lines()


def export_row(sae: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    data = row.get("data_json") or {}
    logits = data.get("logits") or {}
    hist = data.get("histogram") or {"edges": [], "counts": []}
    lh = logits.get("histogram") or {"edges": [], "counts": []}
    edges = hist["edges"]
    acts = []
    for c in data.get("top_contexts") or []:
        vals = c["activations"]
        peak = max(range(len(vals)), key=vals.__getitem__) if vals else 0
        acts.append({"tokens": c["tokens"], "values": vals, "maxValue": c["max"], "maxValueTokenIndex": peak,
                     "contextIndex": c["context"], "position": c["position"]})
    label = row.get("label") or row.get("auto_label") or ""
    return {
        "modelId": sae["model_id"], "layer": sae["hook_name"], "saeId": sae["id"], "index": row["idx"],
        "maxActApprox": row.get("max_act"), "frac_nonzero": row.get("density"), "meanActWhenActive": row.get("mean_act"),
        "pos_str": [t["token"] for t in logits.get("positive") or []],
        "pos_values": [t["value"] for t in logits.get("positive") or []],
        "neg_str": [t["token"] for t in logits.get("negative") or []],
        "neg_values": [t["value"] for t in logits.get("negative") or []],
        "freq_hist_data_bar_heights": hist["counts"],
        "freq_hist_data_bar_values": [(edges[i] * edges[i + 1]) ** 0.5 for i in range(len(hist["counts"]))],
        "logits_hist_data_bar_heights": lh["counts"],
        "logits_hist_data_bar_values": [(lh["edges"][i] + lh["edges"][i + 1]) / 2 for i in range(len(lh["counts"]))],
        "activations": acts,
        "explanations": [{"description": label, "typeName": "user" if row.get("label") else "auto-top-tokens"}]
        if label else [],
        "notes": row.get("notes") or "", "starred": bool(row.get("starred")),
    }
