"""Synthetic features with a known answer, for the protocol tests with the rule server (see conftest)."""
from __future__ import annotations

import random

from interpretability_workbench.features.explain import Example, FeatureExamples

FILLER = [" the", " a", " house", " runs", " blue", " over", " river", " quiet", " green", " table", " lamp",
          " road", " with", " slowly", " paper"]
"""No filler word contains any of the feature words below (cat, dog, zebra)."""


def _window(rng: random.Random, width: int) -> list[str]:
    return [rng.choice(FILLER) for _ in range(width)]


def word_feature(index: int, word: str, *, n_activating: int = 14, n_random: int = 8, n_traps: int = 2,
                 width: int = 8, max_activation: float = 10.0, seed: int = 0) -> FeatureExamples:
    """A feature that fires on ``word`` only, one token per activating window, with peak values spread
    evenly over (0, max]; ``n_traps`` hard negatives contain ``word + 's'`` (a different token) with the
    feature at zero; random negatives contain filler only."""
    rng = random.Random(seed * 1000 + index)
    activating = []
    for k in range(n_activating):
        toks = _window(rng, width)
        pos = rng.randrange(width)
        toks[pos] = word
        acts = [0.0] * width
        acts[pos] = max_activation * (k + 1) / n_activating
        activating.append(Example(toks, acts, context=k, start=1))
    randoms = [Example(_window(rng, width), [0.0] * width, context=100 + k, start=1) for k in range(n_random)]
    traps = []
    for k in range(n_traps):
        toks = _window(rng, width)
        toks[rng.randrange(width)] = word + "s"
        traps.append(Example(toks, [0.0] * width, context=200 + k, start=1))
    return FeatureExamples(index, max_activation, activating, randoms, traps)
