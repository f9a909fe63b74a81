"""The shuffled-explanation control of ``bench/understanding.py`` (section ``explain``): every feature is
scored against *another* feature's explanation — a seeded derangement of the explained features."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_understanding", ROOT / "bench" / "understanding.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("n", [2, 3, 8, 33])
def test_derangement_moves_every_explanation_and_is_seeded(n):
    bench = _bench()
    for seed in range(20):
        perm = bench._derangement(n, seed)
        assert sorted(perm) == list(range(n))  # a permutation: every explanation is used once
        assert all(perm[i] != i for i in range(n))  # no feature keeps its own explanation
        assert perm == bench._derangement(n, seed)
    if n > 3:
        assert len({tuple(bench._derangement(n, s)) for s in range(20)}) > 1  # the seed matters


def test_derangement_needs_two_features():
    with pytest.raises(ValueError, match="at least 2"):
        _bench()._derangement(1, 0)


def test_explain_section_is_registered():
    assert "explain" in _bench().SECTIONS
