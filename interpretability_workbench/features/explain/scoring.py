"""Detection and fuzzing scores of an explanation, as balanced accuracy (the classifier protocol of
EleutherAI's delphi).

* Detection: the scorer sees the explanation and unmarked excerpts — held-out activating ones and
  negatives (random non-activating windows and hard negatives) — and says which ones the feature is
  active in.
* Fuzzing: every excerpt has marked tokens; activating excerpts have their truly active tokens marked,
  negatives have as many random tokens marked as a random activating excerpt. The scorer says which
  markings fit the explanation.

Samples are shuffled (seeded) and shown ``n_examples_shown`` per request; each request is answered with a
list of 0/1 judgements. The score is balanced accuracy over all judgements, so a scorer that always says
1 (or always 0) scores 0.5 however unbalanced the samples.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

from .clients import ChatClient, supports_prefill
from .errors import ChatError, MalformedReply, NotEnoughExamples
from .examples import Example
from .prompts import (
    JUDGEMENT_PREFIX,
    detection_messages,
    fuzzing_messages,
    marked_positions,
    parse_judgements,
    prefilled,
    render_marked,
    render_plain,
)

ScoreKind = Literal["detection", "fuzzing"]


@dataclass
class ScoringConfig:
    n_examples_shown: int = 5
    """Excerpts per scorer request (more leaks information between excerpts and strains the format)."""
    max_tokens: int = 128
    """New tokens allowed for a reply (a list of judgements; more for models that think aloud)."""
    max_failed_batches: int = 0
    """Requests that may fail (endpoint error or malformed reply) before the score itself fails; failed
    requests' excerpts are left out of the score."""
    mark_threshold: float = 0.0
    """Fuzzing marks tokens with activation > this fraction of the feature's max (and > 0)."""

    def __post_init__(self) -> None:
        if self.n_examples_shown < 1:
            raise ValueError("n_examples_shown must be >= 1")
        if self.max_tokens < 1 or self.max_failed_batches < 0:
            raise ValueError("max_tokens must be >= 1 and max_failed_batches >= 0")
        if not 0.0 <= self.mark_threshold < 1.0:
            raise ValueError("mark_threshold must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


class Sample(NamedTuple):
    text: str
    """The excerpt as shown to the scorer."""
    truth: bool
    """True for an activating excerpt (detection) / a correct marking (fuzzing)."""


class Score(NamedTuple):
    balanced_accuracy: float
    samples: list[Sample]
    """In the order shown."""
    judgements: list[int | None]
    """The scorer's 0/1 per sample (None where its request failed)."""
    n_failed_batches: int


def balanced_accuracy(judgements: Sequence[int | bool | None], truths: Sequence[bool]) -> float:
    """Mean of the true-positive rate and the true-negative rate.

    Pairs whose judgement is None are left out. When only one class is present, it is that class's
    recall (the mean over the classes present, as scikit-learn does); with no judgements at all it is a
    ``ValueError``.
    """
    if len(judgements) != len(truths):
        raise ValueError(f"{len(judgements)} judgements for {len(truths)} truths")
    pos = [bool(j) for j, t in zip(judgements, truths) if j is not None and t]
    neg = [not bool(j) for j, t in zip(judgements, truths) if j is not None and not t]
    recalls = [sum(c) / len(c) for c in (pos, neg) if c]
    if not recalls:
        raise ValueError("balanced accuracy needs at least one judgement")
    return sum(recalls) / len(recalls)


def detection_samples(activating: Sequence[Example], negatives: Sequence[Example], rng: random.Random) -> list[Sample]:
    samples = [Sample(render_plain(e.tokens), True) for e in activating]
    samples += [Sample(render_plain(e.tokens), False) for e in negatives]
    rng.shuffle(samples)
    return samples


def fuzzing_samples(activating: Sequence[Example], negatives: Sequence[Example], max_activation: float,
                    rng: random.Random, threshold: float = 0.0) -> list[Sample]:
    marks = [marked_positions(e.activations, max_activation, threshold) for e in activating]
    samples = [Sample(render_marked(e.tokens, m), True) for e, m in zip(activating, marks) if any(m)]
    if not samples:
        raise NotEnoughExamples("no activating example has a token above the marking threshold; "
                                "lower mark_threshold")
    counts = [sum(m) for m in marks if any(m)]
    for e in negatives:
        k = min(rng.choice(counts), len(e.tokens))
        chosen = set(rng.sample(range(len(e.tokens)), k))
        samples.append(Sample(render_marked(e.tokens, [i in chosen for i in range(len(e.tokens))]), False))
    rng.shuffle(samples)
    return samples


class Scorer:
    """Detection and fuzzing scores through one chat client."""

    def __init__(self, client: ChatClient, config: ScoringConfig | None = None) -> None:
        self.client = client
        self.config = config or ScoringConfig()

    @property
    def name(self) -> str:
        return self.client.name

    def detection(self, explanation: str, activating: Sequence[Example], negatives: Sequence[Example], *,
                  rng: random.Random) -> Score:
        _check(activating, negatives)
        return self.classify("detection", explanation, detection_samples(activating, negatives, rng))

    def fuzzing(self, explanation: str, activating: Sequence[Example], negatives: Sequence[Example],
                max_activation: float, *, rng: random.Random) -> Score:
        _check(activating, negatives)
        samples = fuzzing_samples(activating, negatives, max_activation, rng, self.config.mark_threshold)
        return self.classify("fuzzing", explanation, samples)

    def classify(self, kind: ScoreKind, explanation: str, samples: list[Sample]) -> Score:
        """Show ``samples`` in batches, collect the judgements, score them."""
        build = detection_messages if kind == "detection" else fuzzing_messages
        prefix = JUDGEMENT_PREFIX if supports_prefill(self.client) else ""
        n = self.config.n_examples_shown
        judgements: list[int | None] = []
        failed = 0
        last: ChatError | MalformedReply | None = None
        for lo in range(0, len(samples), n):
            batch = samples[lo: lo + n]
            try:
                messages = prefilled(build(explanation, [s.text for s in batch]), prefix)
                reply = prefix + self.client.complete(messages, max_tokens=self.config.max_tokens)
                judgements.extend(parse_judgements(reply, len(batch)))
            except (ChatError, MalformedReply) as e:
                failed += 1
                if failed > self.config.max_failed_batches:
                    raise
                last = e
                judgements.extend([None] * len(batch))
        if last is not None and all(j is None for j in judgements):
            raise last  # every request failed: the error is the score
        return Score(balanced_accuracy(judgements, [s.truth for s in samples]), samples, judgements, failed)


def _check(activating: Sequence[Example], negatives: Sequence[Example]) -> None:
    if not activating:
        raise NotEnoughExamples("no held-out activating examples to score on; the feature needs at least 2 "
                                "activating examples (one to explain, one to score)")
    if not negatives:
        raise NotEnoughExamples("no non-activating examples to score on; build the context pool so "
                                "negatives can be drawn")
