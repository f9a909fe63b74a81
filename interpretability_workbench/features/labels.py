"""Automatic short feature labels from the tokens a feature peaks on (no language model involved).

The label is built from the peak tokens of the feature's top-activating contexts: a token that holds at
least half of the peaks stands alone (``'return'``); otherwise the two or three most frequent peak tokens
are joined (``'(' · '[' · '{'``). Features that never fired are labelled ``dead``; features that fired
but whose peak tokens are all whitespace fall back to the top positive logit tokens (``→ 'def'``).
"""
from __future__ import annotations

from collections import Counter
from typing import TypeVar

T = TypeVar("T")

MAX_LABEL_CHARS = 48


def token_key(token: str) -> str:
    """Search key of a token: stripped of surrounding whitespace and BPE space marks, lower-cased."""
    return token.replace("Ġ", " ").replace("▁", " ").strip().lower()


def clean_token(token: str) -> str:
    t = token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n")
    stripped = t.strip()
    if not stripped:
        return {"\n": "\\n", "\t": "\\t"}.get(t[:1], "␣")
    return stripped


def peak_token_counts(peak_tokens: list[T]) -> list[tuple[T, int]]:
    """Peak tokens (one per top context, as ids or strings) -> (token, count), most frequent first
    (ties: first seen)."""
    counts = Counter(peak_tokens)
    order = {t: i for i, t in reversed(list(enumerate(peak_tokens)))}
    return sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def auto_label(peak_tokens: list[str], top_logit_tokens: list[str] | None = None) -> str:
    if not peak_tokens:
        return "dead"
    ranked = [(clean_token(t), c) for t, c in peak_token_counts(peak_tokens)]
    merged: Counter[str] = Counter()
    for t, c in ranked:
        merged[t] += c
    items = sorted(merged.items(), key=lambda kv: -kv[1])
    total = sum(merged.values())
    if all(t in ("␣", "\\n", "\\t") for t, _ in items) and top_logit_tokens:
        label = "→ " + " · ".join(f"'{clean_token(t)}'" for t in top_logit_tokens[:2])
    elif items[0][1] * 2 >= total:
        label = f"'{items[0][0]}'"
    else:
        label = " · ".join(f"'{t}'" for t, _ in items[:3])
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
