"""Labelled data the evaluations build themselves (offline, from the tokenizer and the built-in corpus).

First-letter task (absorption): every vocabulary token that decodes to a space followed by an alphabetic
word (``" cat"``) is a word; its label is its first letter. Each word becomes an in-context prompt
``"{w1} has the first letter: W\\n ... {word} has the first letter:"`` and the activation is read at the
word's own token.

Token tasks (k-sparse probing), labelled per token of corpus documents from the characters around it:

- ``doctest_code``: the token lies on a doctest line (``>>>`` after indentation) vs on any other line;
- ``inside_parentheses``: the token starts inside an open ``(`` of its document (depth > 0) vs outside;
  a property of the context, not of the token itself;
- ``capitalized_word``: a token that starts a word starting with an upper-case letter vs a lower-case one
  (other tokens are unlabelled).
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import BadRequest

LETTERS = string.ascii_lowercase
PROMPT_TEMPLATE = "{word} has the first letter:"
"""SAEBench's first-letter template; the answer follows as `` X`` (upper case)."""
TOKEN_TASKS = ("doctest_code", "inside_parentheses", "capitalized_word")


class Words(NamedTuple):
    words: list[str]
    """Decoded tokens, leading space included (``" cat"``)."""
    token_ids: list[int]
    letters: np.ndarray
    """First letter of each word as 0..25 ``[n]``."""


def first_letter_words(tokenizer: object, *, max_per_letter: int | None = None, min_chars: int = 2,
                       seed: int = 0) -> Words:
    """Vocabulary tokens that are a space + an ASCII alphabetic word of at least ``min_chars`` letters,
    at most ``max_per_letter`` per first letter (a seeded sample), in token-id order."""
    vocab: dict[str, int] = tokenizer.get_vocab()  # type: ignore[attr-defined]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    by_letter: dict[int, list[tuple[int, str]]] = {}
    for tid in sorted(set(vocab.values())):
        if tid in special:
            continue
        text = tokenizer.decode([tid])  # type: ignore[attr-defined]
        if len(text) < min_chars + 1 or text[0] != " ":
            continue
        w = text[1:]
        if not (w.isascii() and w.isalpha()):
            continue
        by_letter.setdefault(LETTERS.index(w[0].lower()), []).append((tid, text))
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, str, int]] = []
    for letter, items in sorted(by_letter.items()):
        if max_per_letter is not None and len(items) > max_per_letter:
            keep = np.sort(rng.choice(len(items), size=max_per_letter, replace=False))
            items = [items[i] for i in keep]
        chosen += [(tid, text, letter) for tid, text in items]
    chosen.sort()
    return Words([c[1] for c in chosen], [c[0] for c in chosen], np.array([c[2] for c in chosen], dtype=np.int64))


class Prompts(NamedTuple):
    input_ids: Tensor
    """``[n ctx]`` right-padded prompt tokens."""
    attention_mask: Tensor
    """``[n ctx]`` 1 on real tokens."""
    positions: list[Tensor]
    """Per prompt, the position of the word's token (one element)."""
    kept: np.ndarray
    """Indices into the input words of the prompts built (words whose token survives in context)."""


def first_letter_prompts(tokenizer: object, words: Words, *, n_examples: int = 4, seed: int = 0) -> Prompts:
    """One in-context prompt per word (``n_examples`` other words answered first). A word is dropped when,
    in context, the tokenizer does not produce its own token at the end of the prefix."""
    rng = np.random.default_rng(seed)
    bos = getattr(tokenizer, "bos_token_id", None)
    rows, pos, kept = [], [], []
    n = len(words.words)
    for i, (w, tid) in enumerate(zip(words.words, words.token_ids)):
        others = [j for j in rng.choice(n, size=min(n, n_examples + 1), replace=False).tolist() if j != i][:n_examples]
        shots = "".join(PROMPT_TEMPLATE.format(word=words.words[j]) + f" {words.words[j].strip()[0].upper()}\n"
                        for j in others)
        prefix = shots + w
        pre_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        full_ids = tokenizer(shots + PROMPT_TEMPLATE.format(word=w), add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        if not pre_ids or pre_ids[-1] != tid or full_ids[: len(pre_ids)] != pre_ids:
            continue
        lead = [bos] if bos is not None else []
        rows.append(lead + full_ids)
        pos.append(torch.tensor([len(lead) + len(pre_ids) - 1]))
        kept.append(i)
    return _pad(rows, pos, np.array(kept, dtype=np.int64), tokenizer)


def _pad(rows: list[list[int]], pos: list[Tensor], kept: np.ndarray, tokenizer: object) -> Prompts:
    width = max((len(r) for r in rows), default=1)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = pad if pad is not None else (getattr(tokenizer, "eos_token_id", None) or 0)
    ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return Prompts(ids, mask, pos, kept)


# token tasks ------------------------------------------------------------------------------------------

def _line_is_doctest(text: str) -> np.ndarray:
    flags = np.zeros(len(text) + 1, dtype=bool)
    start = 0
    for line in text.split("\n"):
        flags[start: start + len(line) + 1] = line.lstrip().startswith(">>>")
        start += len(line) + 1
    return flags


def _paren_depth(text: str) -> np.ndarray:
    """Depth of open parentheses before each character ``[len+1]``."""
    step = np.array([1 if c == "(" else -1 if c == ")" else 0 for c in text], dtype=np.int64)
    depth = np.concatenate([[0], np.cumsum(step)])
    return np.maximum(depth, 0)


def _label_doctest(text: str, spans: list[tuple[int, int]]) -> list[int]:
    flags = _line_is_doctest(text)
    return [int(flags[_first_visible(text, a, b)]) for a, b in spans]


def _label_parens(text: str, spans: list[tuple[int, int]]) -> list[int]:
    depth = _paren_depth(text)
    return [int(depth[a] > 0) for a, _ in spans]


def _label_capitalized(text: str, spans: list[tuple[int, int]]) -> list[int]:
    out = []
    for a, b in spans:
        c = _first_visible(text, a, b)
        word_start = (c < b and text[c].isascii() and text[c].isalpha()
                      and (c == 0 or not text[c - 1].isalnum()))
        out.append((1 if text[c].isupper() else 0) if word_start else -1)
    return out


def _first_visible(text: str, a: int, b: int) -> int:
    """First character of the token span ``[a, b)`` that is not a space or tab (``a`` if there is none)."""
    c = a
    while c < b and text[c] in " \t":
        c += 1
    return c if c < b else a


_LABELLERS: dict[str, Callable[[str, list[tuple[int, int]]], list[int]]] = {
    "doctest_code": _label_doctest, "inside_parentheses": _label_parens, "capitalized_word": _label_capitalized,
}


@dataclass
class TokenTaskData:
    input_ids: Tensor
    """``[n_docs ctx]`` right-padded document prefixes (BOS first when the tokenizer has one)."""
    attention_mask: Tensor
    """``[n_docs ctx]``."""
    labels: dict[str, Tensor]
    """Task name -> ``[n_docs ctx]`` int8: 1 / 0, or -1 where unlabelled (padding, BOS, position 0)."""

    def __post_init__(self) -> None:
        for name, lab in self.labels.items():
            if lab.shape != self.input_ids.shape:
                raise ValueError(f"labels of {name} must be {tuple(self.input_ids.shape)}, got {tuple(lab.shape)}")


def build_token_tasks(tokenizer: object, texts: list[str], *, tasks: tuple[str, ...] = TOKEN_TASKS,
                      context_size: int = 128) -> TokenTaskData:
    """Tokenise each document (its first ``context_size`` tokens, offsets kept) and label every token."""
    unknown = [t for t in tasks if t not in _LABELLERS]
    if unknown:
        raise BadRequest(f"unknown probing task(s) {unknown}; choose from {', '.join(TOKEN_TASKS)}")
    if not texts:
        raise BadRequest("no documents to build probing tasks from")
    bos = getattr(tokenizer, "bos_token_id", None)
    lead = 1 if bos is not None else 0
    body = context_size - lead
    rows: list[list[int]] = []
    labs: dict[str, list[list[int]]] = {t: [] for t in tasks}
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)  # type: ignore[operator]
        ids, offs = enc["input_ids"][:body], enc["offset_mapping"][:body]
        if len(ids) < 2:
            continue
        spans = [(int(o[0]), int(o[1])) for o in offs]
        rows.append(([bos] if lead else []) + list(ids))
        for t in tasks:
            lab = _LABELLERS[t](text, spans)
            lab = [-1] * lead + lab
            lab[0] = -1  # position 0 (attention sink) is never used
            labs[t].append(lab)
    if not rows:
        raise BadRequest("the documents are too short to build probing tasks from")
    pr = _pad(rows, [], np.zeros(0, dtype=np.int64), tokenizer)
    labels = {}
    for t in tasks:
        lab = torch.full(pr.input_ids.shape, -1, dtype=torch.int8)
        for i, row in enumerate(labs[t]):
            lab[i, : len(row)] = torch.tensor(row, dtype=torch.int8)
        labels[t] = lab
    return TokenTaskData(pr.input_ids, pr.attention_mask, labels)


class TaskSample(NamedTuple):
    doc: Tensor
    """Document row of each sampled token ``[m]``."""
    pos: Tensor
    """Position of each sampled token ``[m]``."""
    y: np.ndarray
    """Label of each sampled token ``[m]`` (0/1), classes balanced."""


def sample_balanced(labels: Tensor, max_per_class: int, seed: int) -> TaskSample:
    """Up to ``max_per_class`` labelled tokens of each class (the smaller class bounds both)."""
    g = np.random.default_rng(seed)
    pos_idx = (labels == 1).nonzero()
    neg_idx = (labels == 0).nonzero()
    n = min(max_per_class, len(pos_idx), len(neg_idx))
    pick_p = pos_idx[np.sort(g.choice(len(pos_idx), size=n, replace=False))] if n else pos_idx[:0]
    pick_n = neg_idx[np.sort(g.choice(len(neg_idx), size=n, replace=False))] if n else neg_idx[:0]
    both = torch.cat([pick_p, pick_n])
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    return TaskSample(both[:, 0], both[:, 1], y)
