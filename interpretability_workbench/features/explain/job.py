"""The explanation job: explain and score features one by one, recording a result (or an error) per feature.

``explain_features`` is the whole loop, free of threads, storage and sockets: the caller runs it in a
worker thread, stores each ``ExplanationResult`` from ``on_result`` (as an ``ExplanationRecord``), publishes
progress, sets ``cancel`` to stop between features, and resumes by passing the indices already done.
A failure on one feature (endpoint down, refusal, timeout, malformed reply, too few examples) is recorded
on that feature's result and the loop goes on.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from ...errors import WorkbenchError
from .clients import ChatClient, supports_prefill
from .errors import NotEnoughExamples, error_kind
from .examples import (
    Example,
    FeatureExamples,
    feature_rng,
    pick_negatives,
    split_activating,
)
from .prompts import (
    EXPLANATION_PREFIX,
    PROMPT_VERSION,
    explainer_messages,
    parse_explanation,
    prefilled,
)
from .scoring import Scorer

log = logging.getLogger(__name__)


@dataclass
class ExplainConfig:
    n_explain: int = 12
    """Activating examples shown to the explainer (spread across activation deciles)."""
    n_score: int = 10
    """Held-out activating examples shown to the scorers (as many negatives are drawn)."""

    def __post_init__(self) -> None:
        if self.n_explain < 1 or self.n_score < 1:
            raise ValueError("n_explain and n_score must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Explainer:
    """Asks a chat model for a short explanation of a feature from its marked examples."""

    def __init__(self, client: ChatClient, *, max_tokens: int = 256, mark_threshold: float = 0.0) -> None:
        """``max_tokens``: new tokens for the reply; ``mark_threshold``: tokens are marked when their
        activation is > 0 and > this fraction of the feature's max."""
        if max_tokens < 1 or not 0.0 <= mark_threshold < 1.0:
            raise ValueError("max_tokens must be >= 1 and mark_threshold in [0, 1)")
        self.client = client
        self.max_tokens = max_tokens
        self.mark_threshold = mark_threshold

    @property
    def name(self) -> str:
        return self.client.name

    def explain(self, examples: list[Example], max_activation: float) -> str:
        """The explanation of the feature active in ``examples``. When the client supports prefill, the
        reply is started with ``[EXPLANATION]:`` for the model (small models then keep to the format)."""
        prefix = EXPLANATION_PREFIX if supports_prefill(self.client) else ""
        messages = prefilled(explainer_messages(examples, max_activation, self.mark_threshold), prefix)
        return parse_explanation(prefix + self.client.complete(messages, max_tokens=self.max_tokens))


@dataclass
class ExplanationResult:
    """What the job produced for one feature."""

    index: int
    """Feature index."""
    explanation: str | None
    """The explainer's phrase (None when it failed)."""
    detection: float | None
    """Detection balanced accuracy in [0, 1] (None when not scored or scoring failed)."""
    fuzzing: float | None
    """Fuzzing balanced accuracy in [0, 1] (None when not scored or scoring failed)."""
    explainer_name: str
    """The explainer client's name, e.g. ``openai:llama3@localhost:11434``."""
    scorer_name: str | None
    """The scorer client's name (None when not scored)."""
    prompt_version: str
    """``PROMPT_VERSION`` of the prompts used."""
    error: str | None
    """What failed, per stage (``explanation: ...; fuzzing: ...``); None when everything succeeded."""
    error_kind: str | None
    """Kind of the first failure (timeout, refused, unauthorized, rate_limited, server_error,
    unreachable, malformed_response, malformed_reply, prompt_too_long, not_enough_examples, internal)."""
    seconds: float
    """Wall time spent on the feature."""


@dataclass
class ExplanationRecord:
    """The stored shape of one feature's explanation (one row per feature and explainer run)."""

    index: int
    """Feature index."""
    explanation: str | None
    """The explainer's phrase; the user's own label is stored elsewhere and wins in the UI."""
    explainer_name: str
    """Which model explained."""
    prompt_version: str
    """Prompt version the explanation and scores were made with."""
    detection: float | None = None
    """Detection balanced accuracy."""
    fuzzing: float | None = None
    """Fuzzing balanced accuracy."""
    scorer_name: str | None = None
    """Which model scored."""
    error: str | None = None
    """Stored error message when a stage failed."""
    error_kind: str | None = None
    """Short kind of that error."""
    created_at: float = 0.0
    """Unix seconds."""

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError("feature index must be >= 0")
        for name in ("detection", "fuzzing"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a balanced accuracy in [0, 1], got {v}")

    @classmethod
    def from_result(cls, r: ExplanationResult, created_at: float | None = None) -> ExplanationRecord:
        return cls(r.index, r.explanation, r.explainer_name, r.prompt_version, r.detection, r.fuzzing,
                   r.scorer_name, r.error, r.error_kind, time.time() if created_at is None else created_at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExplanationRecord:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in names})


class JobSummary(NamedTuple):
    done: int
    """Features processed in this call (with or without error)."""
    errors: int
    """Of those, features whose result carries an error."""
    skipped: int
    """Features skipped as already done."""
    cancelled: bool


def explain_one(fe: FeatureExamples, explainer: Explainer, scorer: Scorer | None, *, seed: int = 0,
                config: ExplainConfig | None = None) -> ExplanationResult:
    """Explain (and score) one feature; every failure is caught and recorded on the result."""
    cfg = config or ExplainConfig()
    t0 = time.perf_counter()
    failures: list[tuple[str, BaseException]] = []
    explanation: str | None = None
    scores: dict[str, float | None] = {"detection": None, "fuzzing": None}
    held_out: list[Example] = []
    try:
        if not fe.activating:
            raise NotEnoughExamples(f"feature {fe.index} has no activating examples (dead, or not analysed)")
        split = split_activating(fe.activating, fe.max_activation, n_explain=cfg.n_explain, n_score=cfg.n_score,
                                 rng=feature_rng(seed, fe.index, "split"))
        held_out = split.score
        explanation = explainer.explain(split.explain, fe.max_activation)
    except Exception as e:  # noqa: BLE001 - one feature's failure is recorded, never stops the job
        failures.append(("explanation", e))
    if explanation is not None and scorer is not None:
        negatives = pick_negatives(fe, len(held_out), feature_rng(seed, fe.index, "pick"))
        for kind in ("detection", "fuzzing"):
            rng = feature_rng(seed, fe.index, kind)
            try:
                if kind == "detection":
                    score = scorer.detection(explanation, held_out, negatives, rng=rng)
                else:
                    score = scorer.fuzzing(explanation, held_out, negatives, fe.max_activation, rng=rng)
                scores[kind] = score.balanced_accuracy
            except Exception as e:  # noqa: BLE001
                failures.append((kind, e))
    for stage, e in failures:
        if not isinstance(e, WorkbenchError):
            log.error("feature %d: %s failed unexpectedly", fe.index, stage, exc_info=e)
    return ExplanationResult(
        index=fe.index, explanation=explanation, detection=scores["detection"], fuzzing=scores["fuzzing"],
        explainer_name=explainer.name, scorer_name=scorer.name if scorer is not None else None,
        prompt_version=PROMPT_VERSION,
        error="; ".join(f"{stage}: {_message(e)}" for stage, e in failures) or None,
        error_kind=error_kind(failures[0][1]) if failures else None,
        seconds=time.perf_counter() - t0,
    )


def explain_features(items: Iterable[FeatureExamples], explainer: Explainer, scorer: Scorer | None, *,
                     on_result: Callable[[ExplanationResult], None], cancel: threading.Event | None = None,
                     seed: int = 0, skip: Collection[int] = (), config: ExplainConfig | None = None) -> JobSummary:
    """Explain and score each feature of ``items`` (lazily iterated) in order.

    ``skip``: indices already done (a resumed job); they are not explained again. ``cancel`` is checked
    before each feature. ``on_result`` is called once per processed feature, in order; an exception it
    raises (e.g. the database is gone) does stop the job. Results do not depend on which features were
    skipped: every random draw is seeded by (seed, feature).
    """
    done = errors = skipped = 0
    for fe in items:
        if cancel is not None and cancel.is_set():
            return JobSummary(done, errors, skipped, True)
        if fe.index in skip:
            skipped += 1
            continue
        result = explain_one(fe, explainer, scorer, seed=seed, config=config)
        done += 1
        errors += result.error is not None
        on_result(result)
    return JobSummary(done, errors, skipped, False)


def _message(e: BaseException) -> str:
    return e.detail if isinstance(e, WorkbenchError) else f"{type(e).__name__}: {e}"
