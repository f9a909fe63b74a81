"""Balanced accuracy with known judgements, the detection/fuzzing samples, and the scorer's batching
protocol against the rule server (a deterministic stand-in for a capable scorer; see conftest)."""
from __future__ import annotations

import random
import re

import pytest

from interpretability_workbench.features.explain import (
    ChatRefused,
    NotEnoughExamples,
    OpenAIChat,
    Scorer,
    ScoringConfig,
    balanced_accuracy,
)
from interpretability_workbench.features.explain.prompts import (
    DETECTION_SYSTEM,
    FUZZING_SYSTEM,
    render_plain,
)
from interpretability_workbench.features.explain.scoring import (
    detection_samples,
    fuzzing_samples,
)

from .conftest import rule_judgement
from .synth import word_feature


def test_balanced_accuracy_known_values():
    # 3 positives (2 caught), 2 negatives (1 rejected): (2/3 + 1/2) / 2
    assert balanced_accuracy([1, 0, 1, 0, 1], [True, True, True, False, False]) == pytest.approx(7 / 12)
    assert balanced_accuracy([1, 1, 0, 0], [True, True, False, False]) == 1.0
    assert balanced_accuracy([0, 0, 1, 1], [True, True, False, False]) == 0.0
    # always saying 1 is chance, however unbalanced the classes
    assert balanced_accuracy([1] * 10, [True] * 9 + [False]) == 0.5
    assert balanced_accuracy([True, False], [True, False]) == 1.0


def test_balanced_accuracy_edge_cases():
    assert balanced_accuracy([1, 0, 1], [True, True, True]) == pytest.approx(2 / 3)  # only positives: TPR
    assert balanced_accuracy([1, 0], [False, False]) == 0.5  # only negatives: TNR
    assert balanced_accuracy([None, 1, 0, None], [True, True, False, False]) == 1.0  # failed ones left out
    with pytest.raises(ValueError, match="at least one"):
        balanced_accuracy([], [])
    with pytest.raises(ValueError, match="at least one"):
        balanced_accuracy([None], [True])
    with pytest.raises(ValueError, match="2 judgements for 3"):
        balanced_accuracy([1, 0], [True, False, True])


def test_balanced_accuracy_agrees_with_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 30)
        truths = [rng.random() < 0.3 for _ in range(n)]
        if len(set(truths)) < 2:
            continue
        judgements = [int(rng.random() < 0.5) for _ in range(n)]
        assert balanced_accuracy(judgements, truths) == pytest.approx(
            sk.balanced_accuracy_score([int(t) for t in truths], judgements))


def test_detection_samples_are_unmarked_and_labelled():
    fe = word_feature(0, " cat")
    s = detection_samples(fe.activating[:4], fe.non_activating[:3], random.Random(0))
    assert sorted(x.truth for x in s) == [False] * 3 + [True] * 4
    assert {x.text for x in s if x.truth} == {render_plain(e.tokens) for e in fe.activating[:4]}
    assert all("<<" not in x.text for x in s)


def test_fuzzing_marks_true_tokens_or_as_many_random_ones():
    fe = word_feature(0, " cat")
    s = fuzzing_samples(fe.activating[:5], fe.non_activating[:5], fe.max_activation, random.Random(0))
    for x in s:
        spans = re.findall(r"<<(.*?)>>", x.text)
        if x.truth:
            assert spans == ["cat"]
        else:
            assert len(spans) == 1 and "cat" not in x.text  # one random token (as many as the true marks)
    with pytest.raises(NotEnoughExamples, match="threshold"):
        fuzzing_samples(fe.activating[:1], fe.non_activating, 10.0, random.Random(0), threshold=0.99)


def _expected(score, system: str, explanation: str) -> float:
    """Balanced accuracy recomputed from the samples: the rule's judgement vs the truth, by hand."""
    pos = [rule_judgement(system, explanation, s.text) for s in score.samples if s.truth]
    neg = [1 - rule_judgement(system, explanation, s.text) for s in score.samples if not s.truth]
    return (sum(pos) / len(pos) + sum(neg) / len(neg)) / 2


def test_scorer_protocol_with_rule_server(chat_server):
    chat_server.mode = "rule"
    fe = word_feature(0, " cat", n_random=6, n_traps=3)
    negatives = fe.non_activating + fe.hard_negatives
    explanation = 'the word "cat"'
    with OpenAIChat(chat_server.url, "rule") as client:
        scorer = Scorer(client, ScoringConfig(n_examples_shown=4))
        det = scorer.detection(explanation, fe.activating[:7], negatives, rng=random.Random(0))
        n_det = len(chat_server.requests)
        fuzz = scorer.fuzzing(explanation, fe.activating[:7], negatives, fe.max_activation, rng=random.Random(0))
    # 16 samples in batches of 4
    assert n_det == 4 and len(chat_server.requests) == 8
    for req in chat_server.requests:
        assert len(re.findall(r"^Excerpt \d+:", req["body"]["messages"][1]["content"], re.MULTILINE)) == 4
    # the judgements line up with the samples they were asked about
    assert det.judgements == [rule_judgement(DETECTION_SYSTEM, explanation, s.text) for s in det.samples]
    assert fuzz.judgements == [rule_judgement(FUZZING_SYSTEM, explanation, s.text) for s in fuzz.samples]
    # detection: every positive caught, the 3 traps (' cats') wrongly accepted: (1 + 6/9) / 2
    assert det.balanced_accuracy == pytest.approx((1 + 6 / 9) / 2) == pytest.approx(
        _expected(det, DETECTION_SYSTEM, explanation))
    assert fuzz.balanced_accuracy == 1.0 == _expected(fuzz, FUZZING_SYSTEM, explanation)
    assert det.n_failed_batches == fuzz.n_failed_batches == 0


def test_failed_batches_fail_the_score_or_are_left_out(chat_server):
    chat_server.mode, chat_server.status = "rule", 400
    fe = word_feature(0, " cat", n_random=6, n_traps=3)
    negatives = fe.non_activating + fe.hard_negatives
    with OpenAIChat(chat_server.url, "rule", max_retries=0) as client:
        chat_server.fail_first = 1
        with pytest.raises(ChatRefused, match="HTTP 400"):
            Scorer(client, ScoringConfig(n_examples_shown=4)).detection("the word \"cat\"", fe.activating[:7],
                                                                          negatives, rng=random.Random(0))
        chat_server.fail_first = 1
        score = Scorer(client, ScoringConfig(n_examples_shown=4, max_failed_batches=1)).detection(
            "the word \"cat\"", fe.activating[:7], negatives, rng=random.Random(0))
    assert score.n_failed_batches == 1 and score.judgements[:4] == [None] * 4
    assert None not in score.judgements[4:]
    assert score.balanced_accuracy == pytest.approx(_expected(score._replace(
        samples=score.samples[4:]), DETECTION_SYSTEM, 'the word "cat"'))
    # when every request fails, the score fails with the endpoint's error even within the allowance
    chat_server.mode = "status"
    with OpenAIChat(chat_server.url, "rule", max_retries=0) as client, pytest.raises(ChatRefused):
        Scorer(client, ScoringConfig(n_examples_shown=8, max_failed_batches=5)).detection(
            "x", fe.activating[:7], negatives, rng=random.Random(0))


def test_scorer_needs_both_classes(tiny_chat):
    fe = word_feature(0, " cat")
    scorer = Scorer(tiny_chat)
    with pytest.raises(NotEnoughExamples, match="held-out activating"):
        scorer.detection("x", [], fe.non_activating, rng=random.Random(0))
    with pytest.raises(NotEnoughExamples, match="non-activating"):
        scorer.fuzzing("x", fe.activating, [], 10.0, rng=random.Random(0))
