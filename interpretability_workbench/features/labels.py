"""Automatic short feature labels, the degenerate-feature rule and the consistency score — all from the tokens a
feature peaks on in its top-activating contexts (no language model involved).

Tokens are shown by one rule (the UI's ``ui/src/tokens/display.ts`` is its twin): a whitespace-only token as
marks — ``␣`` a space, ``↵`` a newline, ``⇥`` a tab (other whitespace as ``<0xNN>``) — and any other token
stripped of surrounding whitespace; byte pieces of a multi-byte character arrive as ``<0xE2>`` from
``model/token_text.py``.

Labels say what they are: ``top token: 'return'`` when one token holds at least half of the peaks,
``top tokens: '(' '[' '{'`` otherwise (the two or three most frequent), ``promotes: 'def' 'class'`` when every
peak is whitespace (the top positive logit tokens then say more), ``dead`` when the feature never fired.

A feature is **degenerate** when at least half of its top contexts peak on a whitespace-only token (special
tokens and position 0 never become peaks: the analysis leaves them out) — the runs-of-spaces features that
otherwise fill the top of a list sorted by activation. Its **consistency**, the default sort score, says how
much its top contexts agree on a non-whitespace peak token: ``share · (1 − H / ln n)`` with ``n`` the number of
top contexts, ``share`` the fraction of their peaks that are not whitespace and ``H`` the entropy (nats) of
those peaks' tokens (compared by ``token_key``). 1 when every top context peaks on the same word ('return'),
near 0 when they all peak on different tokens (no shared theme in the peaks) and 0 for whitespace-only and dead
features. Measured on SmolLM2-135M (layer 6), sorting by it puts token features such as 'subprocess', 'SSL',
'XML' or '>>>' first, where sorting by entropy the other way round surfaced mixtures of unrelated tokens.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import TypeVar

T = TypeVar("T")

MAX_LABEL_CHARS = 48
WHITESPACE_MARKS = {" ": "␣", "\n": "↵", "\t": "⇥"}
MAX_MARKS = 6


def token_key(token: str) -> str:
    """Search key of a token: stripped of surrounding whitespace and BPE space marks, lower-cased."""
    return token.replace("Ġ", " ").replace("▁", " ").strip().lower()


def is_blank(token: str) -> bool:
    """Whitespace-only (or empty) token."""
    return not token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n").strip()


def whitespace_marks(token: str) -> str:
    """A whitespace-only token as visible marks (at most ``MAX_MARKS``, then ``…``)."""
    t = token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n")
    marks = [WHITESPACE_MARKS.get(c, f"<0x{ord(c):02X}>" if ord(c) < 256 else c) for c in t]
    return "".join(marks[:MAX_MARKS]) + ("…" if len(marks) > MAX_MARKS else "") if marks else "∅"


def clean_token(token: str) -> str:
    """How a label shows a token: whitespace-only as marks, anything else stripped."""
    if is_blank(token):
        return whitespace_marks(token)
    return token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n").strip()


def peak_token_counts(peak_tokens: list[T]) -> list[tuple[T, int]]:
    """Peak tokens (one per top context, as ids or strings) -> (token, count), most frequent first
    (ties: first seen)."""
    counts = Counter(peak_tokens)
    order = {t: i for i, t in reversed(list(enumerate(peak_tokens)))}
    return sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def is_degenerate(peak_tokens: list[str]) -> bool:
    """At least half of the top contexts peak on a whitespace-only token (False without top contexts)."""
    return bool(peak_tokens) and 2 * sum(is_blank(t) for t in peak_tokens) >= len(peak_tokens)


def consistency(peak_tokens: list[str]) -> float:
    """How much the top contexts agree on a non-whitespace peak token, 0..1 (module docstring)."""
    content = [token_key(t) for t in peak_tokens if not is_blank(t)]
    if not content:
        return 0.0
    n = len(content)
    h = -sum(c / n * math.log(c / n) for c in Counter(content).values())
    spread = h / math.log(len(peak_tokens)) if len(peak_tokens) > 1 else 0.0
    return round(n / len(peak_tokens) * (1.0 - spread), 4)


def _quoted(tokens: list[str]) -> str:
    return " ".join(f"'{t}'" for t in tokens)


def auto_label(peak_tokens: list[str], top_logit_tokens: list[str] | None = None) -> str:
    if not peak_tokens:
        return "dead"
    merged: Counter[str] = Counter()
    for t, c in peak_token_counts(peak_tokens):
        merged[clean_token(t)] += c
    items = sorted(merged.items(), key=lambda kv: -kv[1])
    total = sum(merged.values())
    if is_degenerate(peak_tokens) and top_logit_tokens:
        shown = [clean_token(t) for t in top_logit_tokens[:3]]
        label = "promotes: " + _quoted(shown)
    elif items[0][1] * 2 >= total:
        label = "top token: " + _quoted([items[0][0]])
    else:
        label = "top tokens: " + _quoted([t for t, _ in items[:3]])
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
