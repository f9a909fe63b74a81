"""Prompts for the explainer and the two scorers (detection, fuzzing), and strict reply parsers.

Marking convention: tokens where a feature is active are wrapped in ``<<`` and ``>>`` (consecutive marked
tokens share one span; a leading space stays outside the marks). The explainer also sees each marked
token's strength on a 1–10 scale: ``ceil(10 * activation / feature max)``.

Change ``PROMPT_VERSION`` whenever a prompt or the marking changes: stored explanations and scores record
it, so results of different prompts are never compared unknowingly.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import MalformedReply
from .examples import Example

PROMPT_VERSION = "iwb-explain-1"
MARK_OPEN, MARK_CLOSE = "<<", ">>"
EXPLANATION_PREFIX = "[EXPLANATION]:"
"""Written for the explainer when its client continues a trailing assistant message (prefill)."""
JUDGEMENT_PREFIX = "["
"""Written for the scorer likewise."""
MAX_EXPLANATION_CHARS = 400
"""A longer 'explanation' means the model ignored the format."""

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    """system | user | assistant."""
    content: str
    """The text of the message."""

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"role must be system, user or assistant, got {self.role!r}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def prefilled(messages: list[Message], prefix: str) -> list[Message]:
    """``messages`` plus an assistant message starting the reply (nothing added for an empty prefix)."""
    return [*messages, Message("assistant", prefix)] if prefix else list(messages)


# rendering ----------------------------------------------------------------------------------------------

def _clean(text: str) -> str:
    """One excerpt per line: newlines and tabs are shown as escapes."""
    return text.replace("\r", "").replace("\n", "\\n").replace("\t", "\\t")


def marked_positions(activations: Sequence[float], max_activation: float, threshold: float = 0.0) -> list[bool]:
    """Which tokens are marked: activation > 0 and > ``threshold`` x the feature's max."""
    return [a > 0 and a > threshold * max_activation for a in activations]


def strength(activation: float, max_activation: float) -> int:
    """1–10 scale of an activation relative to the feature's max (0 for inactive tokens)."""
    if activation <= 0 or max_activation <= 0:
        return 0
    return min(10, max(1, math.ceil(10 * activation / max_activation)))


def render_marked(tokens: Sequence[str], marked: Sequence[bool]) -> str:
    """Join ``tokens`` with ``<<`` ``>>`` around each run of marked tokens."""
    if len(tokens) != len(marked):
        raise ValueError("tokens and marks differ in length")
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if not marked[i]:
            out.append(_clean(tokens[i]))
            i += 1
            continue
        j = i
        while j < len(tokens) and marked[j]:
            j += 1
        span = _clean("".join(tokens[i:j]))
        body = span.lstrip(" ")
        out.append(span[: len(span) - len(body)] + MARK_OPEN + body + MARK_CLOSE)
        i = j
    return "".join(out)


def render_plain(tokens: Sequence[str]) -> str:
    return _clean("".join(tokens))


# explainer ------------------------------------------------------------------------------------------------

EXPLAINER_SYSTEM = (
    "You study one internal feature of a language model. You will read short text excerpts in which the "
    "feature is active. In every excerpt the tokens where it is active are wrapped in << and >>, and the "
    "line below the excerpt lists those tokens with their strength from 1 (weak) to 10 (the feature's "
    "strongest activation).\n"
    "Find what the marked tokens have in common: the token itself, what it means, or the context that "
    "comes before it. Weigh strongly marked tokens most. Describe the pattern in one short phrase of at "
    "most 15 words; be specific, and do not mention the marks or the numbers.\n"
    "You may think first, but the last line of your reply must be:\n"
    "[EXPLANATION]: <your phrase>"
)


def explainer_messages(examples: Sequence[Example], max_activation: float, threshold: float = 0.0) -> list[Message]:
    """System + user messages asking for an explanation of the feature active in ``examples``."""
    if not examples:
        raise ValueError("the explainer needs at least one example")
    blocks = []
    for i, ex in enumerate(examples, 1):
        marks = marked_positions(ex.activations, max_activation, threshold)
        listed = ", ".join(f"{json.dumps(_clean(t).strip() or t, ensure_ascii=False)} {strength(a, max_activation)}"
                           for t, a, m in zip(ex.tokens, ex.activations, marks) if m)
        blocks.append(f"Excerpt {i}: {render_marked(ex.tokens, marks)}\nMarked: {listed or '(none)'}")
    user = "\n\n".join(blocks) + "\n\nWhat does the feature respond to?"
    return [Message("system", EXPLAINER_SYSTEM), Message("user", user)]


_EXPLANATION = re.compile(r"^[\s*_]*\[EXPLANATION\][*_]*\s*:(.*)$", re.IGNORECASE | re.MULTILINE)


def parse_explanation(reply: str) -> str:
    """The phrase on the last ``[EXPLANATION]:`` line; ``MalformedReply`` when absent, empty or too long."""
    found = _EXPLANATION.findall(reply or "")
    if not found:
        raise MalformedReply(f"the explainer's reply has no '[EXPLANATION]:' line: {_excerpt(reply)}", reply)
    text = found[-1].strip().strip("*_").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":  # a phrase quoted as a whole
        text = text[1:-1].strip()
    if not text:
        raise MalformedReply("the explainer's '[EXPLANATION]:' line is empty", reply)
    if len(text) > MAX_EXPLANATION_CHARS:
        raise MalformedReply(f"the explanation is {len(text)} characters; the prompt asks for a short phrase "
                             f"(at most {MAX_EXPLANATION_CHARS})", reply)
    return text


# scorers ----------------------------------------------------------------------------------------------------

DETECTION_SYSTEM = (
    "You check explanations of a language-model feature. You get an explanation of what the feature "
    "responds to and several numbered text excerpts. The feature is active somewhere in some excerpts "
    "and nowhere in the others. For each excerpt, decide whether the explanation predicts that the "
    "feature is active in it: 1 if yes, 0 if no.\n"
    "Reply with only a JSON list with one 0 or 1 per excerpt, in order, for example [1, 0, 0, 1]."
)

FUZZING_SYSTEM = (
    "You check explanations of a language-model feature. You get an explanation of what the feature "
    "responds to and several numbered text excerpts. In every excerpt some tokens are wrapped in << and "
    ">>. In some excerpts the marked tokens are exactly where the feature is active; in others the marks "
    "were placed at random. For each excerpt, decide whether the marked tokens are the ones the "
    "explanation describes: 1 if the marking is correct, 0 if not.\n"
    "Reply with only a JSON list with one 0 or 1 per excerpt, in order, for example [1, 0, 0, 1]."
)


def _scorer_messages(system: str, explanation: str, texts: Sequence[str]) -> list[Message]:
    if not texts:
        raise ValueError("a scoring batch needs at least one excerpt")
    lines = "\n".join(f"Excerpt {i}: {t}" for i, t in enumerate(texts, 1))
    user = (f"Explanation: {explanation}\n\n{lines}\n\n"
            f"Answer with a JSON list of {len(texts)} numbers (0 or 1).")
    return [Message("system", system), Message("user", user)]


def detection_messages(explanation: str, texts: Sequence[str]) -> list[Message]:
    """``texts``: unmarked excerpts (``render_plain``)."""
    return _scorer_messages(DETECTION_SYSTEM, explanation, texts)


def fuzzing_messages(explanation: str, texts: Sequence[str]) -> list[Message]:
    """``texts``: marked excerpts (``render_marked``)."""
    return _scorer_messages(FUZZING_SYSTEM, explanation, texts)


_LIST = re.compile(r"\[[^\[\]]*\]")


def parse_judgements(reply: str, n: int) -> list[int]:
    """The last ``[...]`` list of the reply as exactly ``n`` judgements, each the integer 0 or 1;
    ``MalformedReply`` otherwise."""
    found = _LIST.findall(reply or "")
    if not found:
        raise MalformedReply(f"the scorer's reply has no [..] list: {_excerpt(reply)}", reply)
    try:
        values = json.loads(found[-1])
    except json.JSONDecodeError:
        raise MalformedReply(f"the scorer's list is not JSON: {_excerpt(found[-1])}", reply) from None
    if len(values) != n:
        raise MalformedReply(f"the scorer judged {len(values)} excerpts, expected {n}", reply)
    if not all(type(v) is int and v in (0, 1) for v in values):
        raise MalformedReply(f"the scorer's judgements must be 0 or 1, got {_excerpt(found[-1])}", reply)
    return values


def _excerpt(text: str | None, n: int = 120) -> str:
    t = (text or "").strip().replace("\n", " ")
    return repr(t if len(t) <= n else t[: n - 1] + "…")
