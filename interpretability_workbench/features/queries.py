"""Reading and editing stored feature rows: paged search/sort, full detail, user labels, export.

A feature's displayed ``label`` is the user's label when set, else the automatic one; both are kept
(``user_label``, ``auto_label``). Search ``q``: ``token:<tok>`` matches features whose top contexts peak
on that token (compared stripped and lower-cased), ``is:starred`` the starred ones, anything else is a
case-insensitive substring of the label, automatic label or notes.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from ..errors import Invalid, NotFound
from ..sae.registry import SAERegistry
from ..store.features import SORT_KEYS, FeatureFilter, FeatureLabel, FeatureRepo, FeatureRow
from ..store.saes import SAERecord
from .labels import token_key

MAX_LIMIT = 500
SORT_COLUMNS = tuple(SORT_KEYS)


def summary(row: FeatureRow) -> dict[str, Any]:
    return {
        "index": row.idx, "label": row.display_label, "auto_label": row.auto_label,
        "user_label": row.label, "density": row.density, "max_activation": row.max_act,
        "mean_activation": row.mean_act, "starred": row.starred,
        "top_tokens": [t["token"] for t in row.top_tokens],
        "explanation": row.explanation.text if row.explanation else None,
        "detection": row.explanation.detection if row.explanation else None,
        "fuzzing": row.explanation.fuzzing if row.explanation else None,
        "explanation_error": row.explanation.error if row.explanation else None,
        "explanation_error_kind": row.explanation.error_kind if row.explanation else None,
        "consistency": row.consistency, "degenerate": row.degenerate,
    }


def parse_search(q: str | None) -> FeatureFilter:
    """``token:<tok>``, ``is:starred`` or free text (see the module docstring)."""
    q = (q or "").strip()
    if q.lower().startswith("token:"):
        key = token_key(q[6:])
        if not key:
            raise Invalid("token: needs a token, e.g. token:return")
        return FeatureFilter(token_key=key)
    if q.lower() == "is:starred":
        return FeatureFilter(starred=True)
    return FeatureFilter(text=q or None)


class FeatureQueries:
    def __init__(self, repo: FeatureRepo, saes: SAERegistry) -> None:
        self.repo, self.saes = repo, saes

    def _check_index(self, sae_id: str, index: int) -> SAERecord:
        rec = self.saes.row(sae_id)
        if not 0 <= index < rec.d_sae:
            raise NotFound(f"feature {index} does not exist: SAE {sae_id} has features 0..{rec.d_sae - 1}")
        return rec

    def labels(self, sae_id: str, indices: list[int] | None = None) -> dict[int, FeatureLabel]:
        return self.repo.labels(sae_id, indices)

    def label_texts(self, sae_id: str, indices: list[int] | None = None) -> dict[int, str | None]:
        return {i: lab.label for i, lab in self.repo.labels(sae_id, indices).items()}

    def list(self, sae_id: str, *, offset: int = 0, limit: int = 50, sort: str = "index",
             q: str | None = None, hide_degenerate: bool = False) -> dict[str, Any]:
        self.saes.row(sae_id)
        if offset < 0 or not 1 <= limit <= MAX_LIMIT:
            raise Invalid(f"need offset >= 0 and 1 <= limit <= {MAX_LIMIT}")
        if sort.lstrip("-") not in SORT_KEYS:
            raise Invalid(f"unknown sort {sort!r}; use one of {', '.join(SORT_KEYS)} (prefix '-' to descend)")
        flt = parse_search(q)
        flt.hide_degenerate = hide_degenerate
        rows, total = self.repo.page(sae_id, offset=offset, limit=limit, sort=sort, flt=flt)
        return {"items": [summary(r) for r in rows], "total": total, "offset": offset, "limit": limit}

    def get(self, sae_id: str, index: int) -> dict[str, Any]:
        self._check_index(sae_id, index)
        row = self.repo.get(sae_id, index)
        if row is None:
            raise NotFound(f"feature {index} of SAE {sae_id} has not been analysed yet; "
                           f"POST /api/saes/{sae_id}/analysis to analyse it")
        return self._detail(sae_id, row)

    def _detail(self, sae_id: str, row: FeatureRow) -> dict[str, Any]:
        data = row.data or {}
        logits = data.get("logits") or {}
        neigh = data.get("neighbours") or []
        coact = data.get("coactive")
        names = self.label_texts(sae_id, sorted({n["index"] for n in neigh + (coact or [])}))

        def named(items: list[dict]) -> list[dict]:
            return [{"index": n["index"], "label": names.get(n["index"]) or "", "score": n["score"]} for n in items]

        return {
            **summary(row), "notes": row.notes, "analysed": bool(data),
            "top_contexts": data.get("top_contexts") or [],
            "quantiles": data.get("quantiles") or [],
            "histogram": data.get("histogram") or {"edges": [], "counts": []},
            "logit_histogram": logits.get("histogram"),
            "top_positive_logits": logits.get("positive") or [],
            "top_negative_logits": logits.get("negative") or [],
            "neighbours": named(neigh), "coactive": None if coact is None else named(coact),
            "top_token_counts": row.top_tokens,
            "explanation_detail": None if row.explanation is None else {
                "text": row.explanation.text, **row.explanation.meta(),
                "detection": row.explanation.detection, "fuzzing": row.explanation.fuzzing},
        }

    def update(self, sae_id: str, index: int, *, label: str | None = None, notes: str | None = None,
               starred: bool | None = None) -> dict[str, Any]:
        """Persist the user's label / notes / star (an empty label restores the automatic one)."""
        self._check_index(sae_id, index)
        self.repo.set_user_fields(sae_id, index, label=label, notes=notes, starred=starred)
        return self._detail(sae_id, self.repo.get(sae_id, index))  # type: ignore[arg-type]

    def export(self, sae_id: str) -> Iterator[str]:
        """JSON lines, one feature a line, in the spirit of Neuronpedia's feature rows."""
        sae = self.saes.row(sae_id)
        if self.repo.count(sae_id) == 0:
            raise NotFound(f"SAE {sae_id} has no analysed features; POST /api/saes/{sae_id}/analysis first")
        return (json.dumps(export_row(sae, row)) + "\n" for row in self.repo.iter_rows(sae_id))


def export_row(sae: SAERecord, row: FeatureRow) -> dict[str, Any]:
    data = row.data or {}
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
    label = row.display_label
    return {
        "modelId": sae.model_id, "layer": sae.hook_name, "saeId": sae.id, "index": row.idx,
        "maxActApprox": row.max_act, "frac_nonzero": row.density, "meanActWhenActive": row.mean_act,
        "pos_str": [t["token"] for t in logits.get("positive") or []],
        "pos_values": [t["value"] for t in logits.get("positive") or []],
        "neg_str": [t["token"] for t in logits.get("negative") or []],
        "neg_values": [t["value"] for t in logits.get("negative") or []],
        "freq_hist_data_bar_heights": hist["counts"],
        "freq_hist_data_bar_values": [(edges[i] * edges[i + 1]) ** 0.5 for i in range(len(hist["counts"]))],
        "logits_hist_data_bar_heights": lh["counts"],
        "logits_hist_data_bar_values": [(lh["edges"][i] + lh["edges"][i + 1]) / 2 for i in range(len(lh["counts"]))],
        "activations": acts,
        "explanations": [{"description": label, "typeName": "user" if row.label else "auto-top-tokens"}]
        if label else [],
        "notes": row.notes, "starred": row.starred,
    }
