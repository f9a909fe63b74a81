"""Prompt construction (marks, strengths, every example present) and the strict reply parsers."""
from __future__ import annotations

import math
import random
import re

import pytest

from interpretability_workbench.features.explain import (
    PROMPT_VERSION,
    Example,
    MalformedReply,
    parse_explanation,
    parse_judgements,
    split_activating,
)
from interpretability_workbench.features.explain.examples import decile
from interpretability_workbench.features.explain.prompts import (
    detection_messages,
    explainer_messages,
    fuzzing_messages,
    render_marked,
    strength,
)

from .synth import word_feature


def test_render_marked_groups_runs_and_keeps_spaces_outside():
    tokens = [" The", " cat", " sat", "\n", " on", " it"]
    assert render_marked(tokens, [0, 1, 1, 0, 0, 1]) == " The <<cat sat>>\\n on <<it>>"
    assert render_marked(tokens, [0] * 6) == " The cat sat\\n on it"


def test_strength_scale():
    assert [strength(a, 8.0) for a in (8.0, 7.9, 4.0, 0.01, 0.0, -1.0)] == [10, 10, 5, 1, 0, 0]


def _unmark(text: str) -> str:
    return text.replace("<<", "").replace(">>", "")


def test_explainer_prompt_marks_active_tokens_with_strengths(tiny_analysis):
    from interpretability_workbench.features.explain import examples_from_row

    row = max(tiny_analysis.rows, key=lambda r: len(r["data_json"]["top_contexts"]))
    exs = examples_from_row(row["data_json"])
    mx = row["max_act"]
    system, user = explainer_messages(exs, mx)
    assert system.role == "system" and "[EXPLANATION]:" in system.content and user.role == "user"
    blocks = user.content.split("\n\n")[:-1]
    assert len(blocks) == len(exs)
    for i, (block, ex) in enumerate(zip(blocks, exs), 1):
        head, marked = block.split("\n")
        assert head.startswith(f"Excerpt {i}: ")
        shown = head[len(f"Excerpt {i}: "):]
        assert _unmark(shown) == "".join(ex.tokens).replace("\n", "\\n").replace("\t", "\\t").replace("\r", "")
        # the marked spans are exactly the runs of active tokens
        runs, cur = [], []
        for t, a in zip(ex.tokens, ex.activations):
            if a > 0:
                cur.append(t)
            elif cur:
                runs.append("".join(cur)), cur.clear()
        if cur:
            runs.append("".join(cur))
        expect_runs = [r.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "").lstrip(" ") for r in runs]
        assert re.findall(r"<<(.*?)>>", shown) == expect_runs
        # the listed strengths are ceil(10 * a / max) of the active tokens, in order
        listed = [int(v) for v in re.findall(r" (\d+)(?:,|$)", marked[len("Marked: "):])]
        assert listed == [min(10, max(1, math.ceil(10 * a / mx))) for a in ex.activations if a > 0]


def test_explainer_prompt_covers_deciles_of_the_split():
    fe = word_feature(0, " cat", n_activating=20)
    split = split_activating(fe.activating, fe.max_activation, n_explain=10, n_score=10, rng=random.Random(0))
    _, user = explainer_messages(split.explain, fe.max_activation)
    shown = re.findall(r"^Excerpt \d+: (.*)$", user.content, re.MULTILINE)
    assert shown == [render_marked(e.tokens, [a > 0 for a in e.activations]) for e in split.explain]
    strengths = [int(s) for s in re.findall(r'"cat" (\d+)', user.content)]
    assert sorted(strengths) == sorted({decile(e, 10.0) + 1 for e in fe.activating})  # 1..10, one per decile
    assert strengths == sorted(strengths, reverse=True)


def test_threshold_leaves_weak_tokens_unmarked():
    ex = Example([" a", " b", " c"], [0.5, 4.0, 10.0])
    _, user = explainer_messages([ex], 10.0, threshold=0.3)
    assert "Excerpt 1:  a <<b c>>" in user.content


def test_scorer_prompts_number_excerpts_and_ask_for_n():
    for build in (detection_messages, fuzzing_messages):
        system, user = build("the word \"cat\"", ["one", "two <<x>>", "three"])
        assert user.content.startswith('Explanation: the word "cat"\n\nExcerpt 1: one\nExcerpt 2: two <<x>>\n'
                                       "Excerpt 3: three\n")
        assert "JSON list of 3 numbers" in user.content and "JSON list" in system.content
    assert "at random" in fuzzing_messages("x", ["a"])[0].content
    assert "at random" not in detection_messages("x", ["a"])[0].content
    assert PROMPT_VERSION


@pytest.mark.parametrize("reply, expected", [
    ("[EXPLANATION]: the word cat", "the word cat"),
    ("The marks are on animals.\nSo:\n[EXPLANATION]:   animal nouns, mostly 'cat'  ", "animal nouns, mostly 'cat'"),
    ('[explanation]: "quoted phrase"', "quoted phrase"),
    ('[EXPLANATION]: the word "cat"', 'the word "cat"'),
    ("[EXPLANATION]: 'it'", "it"),
    ("**[EXPLANATION]:** bold markdown", "bold markdown"),
    ("[EXPLANATION]: first\n[EXPLANATION]: second wins", "second wins"),
])
def test_parse_explanation(reply: str, expected: str):
    assert parse_explanation(reply) == expected


@pytest.mark.parametrize("reply, match", [
    ("The feature responds to cats.", "no '\\[EXPLANATION\\]:' line"),
    ("", "no '\\[EXPLANATION\\]:' line"),
    ("[EXPLANATION]:   ", "empty"),
    ("[EXPLANATION]: " + "long " * 100, "short phrase"),
    ("EXPLANATION: missing brackets", "no '\\[EXPLANATION\\]:' line"),
])
def test_parse_explanation_rejects(reply: str, match: str):
    with pytest.raises(MalformedReply, match=match) as e:
        parse_explanation(reply)
    assert e.value.reply == reply and e.value.kind == "malformed_reply"


@pytest.mark.parametrize("reply, n, expected", [
    ("[1, 0, 1]", 3, [1, 0, 1]),
    ("Sure!\n[0,0,1,1]\n", 4, [0, 0, 1, 1]),
    ("For example [0, 0, 0] would be wrong; my answer: [1, 1, 0]", 3, [1, 1, 0]),
])
def test_parse_judgements(reply: str, n: int, expected: list[int]):
    assert parse_judgements(reply, n) == expected


@pytest.mark.parametrize("reply, n, match", [
    ("1, 0, 1", 3, "no \\[..\\] list"),
    ("[1, 0]", 3, "judged 2 excerpts, expected 3"),
    ("[1, 2, 0]", 3, "0 or 1"),
    ("[true, false, true]", 3, "0 or 1"),
    ("[1.0, 0, 1]", 3, "0 or 1"),
    ("['1', '0', '1']", 3, "not JSON"),
    ("[1, 0, 1", 3, "no \\[..\\] list"),
])
def test_parse_judgements_rejects(reply: str, n: int, match: str):
    with pytest.raises(MalformedReply, match=match):
        parse_judgements(reply, n)
