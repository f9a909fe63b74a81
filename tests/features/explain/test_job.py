"""The explanation job end to end: the tiny model in-process (gibberish -> a stored error per feature, the
job finishes), the endpoint client against a real server failing in every way, the rule server's happy
path with known scores, cancellation and resume."""
from __future__ import annotations

import threading

import pytest

from interpretability_workbench.features.explain import (
    PROMPT_VERSION,
    Example,
    ExplainConfig,
    Explainer,
    ExplanationRecord,
    ExplanationResult,
    FeatureExamples,
    LocalChat,
    OpenAIChat,
    Scorer,
    ScoringConfig,
    explain_features,
    gather_feature_examples,
)

from .synth import word_feature


def run(items, explainer, scorer=None, **kw) -> tuple[list[ExplanationResult], object]:
    results: list[ExplanationResult] = []
    summary = explain_features(items, explainer, scorer, on_result=results.append, **kw)
    return results, summary


@pytest.fixture(scope="module")
def tiny_features(tiny_analysis, tiny_pool) -> list[FeatureExamples]:
    rows = [r for r in tiny_analysis.rows if len(r["data_json"]["top_contexts"]) >= 4][:3]
    assert len(rows) == 3
    return [gather_feature_examples(r["idx"], r["data_json"], r["max_act"], tiny_pool, n_non_activating=4,
                                    n_hard_negatives=4, window_before=6, window_after=3) for r in rows]


def test_tiny_model_explainer_and_scorer(tiny_features, tiny_chat: LocalChat):
    """A random tiny model answers gibberish: every feature gets a stored parse error, none stops the job.
    LocalChat prefills '[EXPLANATION]:', so the gibberish after it passes as an explanation and the
    scorers' replies (prefilled '[') are the ones that fail."""
    results, summary = run(tiny_features, Explainer(tiny_chat, max_tokens=8),
                           Scorer(tiny_chat, ScoringConfig(max_tokens=8)), config=ExplainConfig(n_explain=4))
    assert summary == (3, 3, 0, False)
    assert [r.index for r in results] == [fe.index for fe in tiny_features]
    for r in results:
        assert r.detection is None and r.fuzzing is None and r.error_kind == "malformed_reply"
        if r.explanation is None:  # nothing printable after the prefill
            assert r.error.startswith("explanation: the explainer's")
        else:
            assert "detection: the scorer's" in r.error and "fuzzing: the scorer's" in r.error
        assert r.explainer_name == r.scorer_name == tiny_chat.name and r.prompt_version == PROMPT_VERSION
        assert r.seconds > 0
    assert any(r.explanation is not None for r in results)  # the scorers did run


def test_tiny_model_as_scorer_keeps_the_explanation(tiny_features, tiny_chat, chat_server):
    chat_server.mode = "rule"
    with OpenAIChat(chat_server.url, "rule") as client:
        results, summary = run(tiny_features[:2], Explainer(client),
                               Scorer(tiny_chat, ScoringConfig(max_tokens=8, n_examples_shown=3)),
                               config=ExplainConfig(n_explain=4, n_score=3))
    assert summary.done == 2 and summary.errors == 2
    for r in results:
        assert r.explanation and r.explanation.startswith("the word ")
        assert r.detection is None and r.fuzzing is None and r.error_kind == "malformed_reply"
        assert "detection: the scorer's reply" in r.error and "fuzzing: the scorer's reply" in r.error
        assert r.scorer_name == tiny_chat.name and r.explainer_name.startswith("openai:rule@")


def test_tiny_model_with_its_own_context_limit(tiny_features, tiny_lm):
    results, summary = run(tiny_features[:1], Explainer(LocalChat(tiny_lm)))  # 256 positions
    assert summary.errors == 1 and results[0].error_kind == "prompt_too_long"


def test_endpoint_with_tiny_model_behind_it(tiny_features, chat_server):
    """Without prefill the tiny model never writes the '[EXPLANATION]:' line: parse errors, stored."""
    with OpenAIChat(chat_server.url, "tiny") as client:
        results, summary = run(tiny_features, Explainer(client, max_tokens=8), Scorer(client),
                               config=ExplainConfig(n_explain=4))
    assert summary == (3, 3, 0, False)
    assert all(r.error_kind == "malformed_reply" for r in results)
    assert len(chat_server.requests) == 3  # one explainer request per feature; scoring never reached
    assert all(r.error.startswith("explanation: the explainer's reply has no") for r in results)


def test_endpoint_that_ignores_prefill_still_parses(chat_server):
    """With ``prefill=True`` the reply start is sent as a trailing assistant message; the rule server
    ignores it and answers in full, which still parses (the last line/list wins)."""
    chat_server.mode = "rule"
    with OpenAIChat(chat_server.url, "rule", prefill=True) as client:
        results, _ = run([word_feature(0, " cat")], Explainer(client), Scorer(client), config=ExplainConfig(n_score=4))
    assert (results[0].explanation, results[0].detection, results[0].fuzzing) == ('the word "cat"', 0.75, 1.0)
    last = [r["body"]["messages"][-1] for r in chat_server.requests]
    assert last[0] == {"role": "assistant", "content": "[EXPLANATION]:"}
    assert all(m == {"role": "assistant", "content": "["} for m in last[1:])


def test_rule_server_happy_path_scores(chat_server):
    """Protocol test: the rule server explains 'the word "cat"' and judges by that rule, so the scores are
    known. 14 activating examples split 7/7; n_score=4 held out; 4 negatives = 2 traps (' cats', which the
    rule wrongly accepts) + 2 random windows. Detection (1 + 2/4) / 2; fuzzing 1 (random marks never
    land on 'cat')."""
    chat_server.mode = "rule"
    feats = [word_feature(0, " cat", n_traps=2), word_feature(1, " dog", n_traps=2)]
    with OpenAIChat(chat_server.url, "rule") as client:
        results, summary = run(feats, Explainer(client), Scorer(client, ScoringConfig(n_examples_shown=3)),
                               config=ExplainConfig(n_score=4), seed=7)
    assert summary == (2, 0, 0, False)
    assert [r.explanation for r in results] == ['the word "cat"', 'the word "dog"']
    assert all(r.detection == 0.75 and r.fuzzing == 1.0 and r.error is None for r in results)
    # 1 explainer request + ceil(8 / 3) detection + ceil(8 / 3) fuzzing requests per feature
    assert len(chat_server.requests) == 2 * (1 + 3 + 3)
    explainer_prompt = chat_server.requests[0]["body"]["messages"][1]["content"]
    assert explainer_prompt.count("Excerpt ") == 7 and explainer_prompt.count("<<cat>>") == 7

    rec = ExplanationRecord.from_result(results[0], created_at=123.0)
    assert rec == ExplanationRecord(0, 'the word "cat"', results[0].explainer_name, PROMPT_VERSION, 0.75, 1.0,
                                    results[0].scorer_name, None, None, 123.0)
    assert ExplanationRecord.from_dict(rec.to_dict()) == rec
    with pytest.raises(ValueError, match="balanced accuracy"):
        ExplanationRecord(0, "x", "e", PROMPT_VERSION, detection=1.5)


def test_results_are_seeded_per_feature(chat_server):
    chat_server.mode = "rule"
    feats = [word_feature(i, w, n_traps=3) for i, w in enumerate([" cat", " dog", " zebra"])]

    def prompts() -> list[list[dict]]:
        return [r["body"]["messages"] for r in chat_server.requests]

    with OpenAIChat(chat_server.url, "rule") as client:
        explainer, scorer = Explainer(client), Scorer(client)
        full, _ = run(feats, explainer, scorer, seed=1)
        full_dog = [m for m in prompts() if "dog" in m[1]["content"]]
        chat_server.requests.clear()
        resumed, summary = run(feats, explainer, scorer, seed=1, skip={0, 2})
    assert summary == (1, 0, 2, False) and [r.index for r in resumed] == [1]
    assert (resumed[0].explanation, resumed[0].detection, resumed[0].fuzzing) == \
        (full[1].explanation, full[1].detection, full[1].fuzzing)
    assert len(full_dog) == 7 and prompts() == full_dog  # the same excerpts, in the same order


@pytest.mark.parametrize("mode, status, kind, attempts", [
    ("timeout", None, "timeout", 2),
    ("status", 400, "refused", 1),
    ("status", 401, "unauthorized", 1),
    ("status", 429, "rate_limited", 2),
    ("status", 500, "server_error", 2),
    ("malformed", None, "malformed_response", 1),
    ("no_choices", None, "malformed_response", 1),
    ("refusal", None, "refused", 1),
])
def test_endpoint_failures_are_stored_per_feature(chat_server, mode, status, kind, attempts):
    chat_server.mode = mode
    if status:
        chat_server.status = status
    feats = [word_feature(i, w) for i, w in enumerate([" cat", " dog"])]
    timeout_s = 0.2 if mode == "timeout" else 30.0  # a loaded machine must not turn other failures into timeouts
    with OpenAIChat(chat_server.url, "m", timeout_s=timeout_s, max_retries=1, backoff_s=0) as client:
        results, summary = run(feats, Explainer(client), Scorer(client))
    assert summary == (2, 2, 0, False)
    for r in results:
        assert r.explanation is None and r.error_kind == kind and r.error.startswith("explanation: ")
    assert len(chat_server.requests) == 2 * attempts


def test_one_refused_feature_does_not_stop_the_others(chat_server):
    chat_server.mode, chat_server.refuse_if = "rule", "zebra"
    feats = [word_feature(i, w) for i, w in enumerate([" cat", " zebra", " dog"])]
    with OpenAIChat(chat_server.url, "rule") as client:
        results, summary = run(feats, Explainer(client), Scorer(client))
    assert summary == (3, 1, 0, False)
    assert results[1].error_kind == "refused" and "HTTP 400" in results[1].error
    assert "refuses prompts mentioning 'zebra'" in results[1].error
    assert results[0].explanation == 'the word "cat"' and results[2].explanation == 'the word "dog"'
    assert results[0].detection is not None and results[2].fuzzing == 1.0


def test_too_few_examples(chat_server):
    chat_server.mode = "rule"
    dead = FeatureExamples(0, 0.0, [])
    single = FeatureExamples(1, 5.0, [Example([" a", " cat"], [0.0, 5.0])],
                             non_activating=[Example([" b", " c"], [0.0, 0.0])])
    with OpenAIChat(chat_server.url, "rule") as client:
        results, summary = run([dead, single], Explainer(client), Scorer(client))
    assert summary.errors == 2
    assert results[0].error_kind == "not_enough_examples" and "no activating examples" in results[0].error
    assert results[1].explanation == 'the word "cat"' and results[1].error_kind == "not_enough_examples"
    assert "held-out activating" in results[1].error
    assert len(chat_server.requests) == 1  # the single example is explained; nothing is left to score on


def test_cancel_between_features_and_resume(chat_server):
    chat_server.mode = "rule"
    feats = [word_feature(i, w) for i, w in enumerate([" cat", " dog", " zebra"])]
    cancel = threading.Event()
    done: list[ExplanationResult] = []

    def on_result(r: ExplanationResult) -> None:
        done.append(r)
        cancel.set()  # stop after the first feature

    with OpenAIChat(chat_server.url, "rule") as client:
        explainer, scorer = Explainer(client), Scorer(client)
        summary = explain_features(iter(feats), explainer, scorer, on_result=on_result, cancel=cancel)
        assert summary == (1, 0, 0, True) and [r.index for r in done] == [0]
        rest, summary = run(feats, explainer, scorer, skip={r.index for r in done})
    assert summary == (2, 0, 1, False) and [r.index for r in rest] == [1, 2]


def test_storage_failure_stops_the_job(chat_server):
    chat_server.mode = "rule"

    def on_result(r: ExplanationResult) -> None:
        raise OSError("disk full")

    with OpenAIChat(chat_server.url, "rule") as client, pytest.raises(OSError, match="disk full"):
        explain_features([word_feature(0, " cat")], Explainer(client), None, on_result=on_result)


@pytest.mark.integration
def test_default_model_explains_with_prefill(default_lm):
    """SmolLM2-135M-Instruct (the embedded default) through its chat template with prefill: it writes an
    explanation; its judgements may or may not keep to the format, and either way the result is stored."""
    chat = LocalChat(default_lm)
    assert chat.uses_chat_template
    results, summary = run([word_feature(0, " cat")], Explainer(chat, max_tokens=24),
                           Scorer(chat, ScoringConfig(max_tokens=12, max_failed_batches=2)),
                           config=ExplainConfig(n_explain=6, n_score=3))
    (r,) = results
    assert summary.done == 1 and r.explanation and len(r.explanation) <= 400
    for score in (r.detection, r.fuzzing):
        assert score is None or 0.0 <= score <= 1.0
    assert (r.error is None) == (r.detection is not None and r.fuzzing is not None)
    assert r.error is None or r.error_kind == "malformed_reply"
