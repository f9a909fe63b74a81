"""The search strategy on its own, with a synthetic measurement (no model): stages, budget, modes, replay."""
from __future__ import annotations

import pytest

from interpretability_workbench.behaviour.report import pareto_front
from interpretability_workbench.behaviour.search import run_search
from interpretability_workbench.behaviour.types import (
    Budget,
    Candidate,
    Edit,
    LayerRanking,
    RankedFeature,
    SearchRequest,
    SplitMetrics,
    edits_key,
    score,
)

REQ = {"positive": ["a b", "c d"], "negative": ["e f", "g h"], "target_tokens": [1]}


def ranking(sae_id: str, layer: int, n: int = 20) -> LayerRanking:
    feats = [RankedFeature(i, 10.0 - i * 0.1, {"last": 10.0 - i * 0.1}, 2.0, 0.0, 1.0, 0.0) for i in range(n)]
    return LayerRanking(sae_id, f"blocks.{layer}.hook_resid_post", layer, feats)


def world(good: set[int], harm: float = 0.0004):
    """Removing `good` features kills the target; every weight-delta feature costs KL ``harm`` × strength;
    clamp costs a tenth; negative clamps cost a lot."""
    def measure(edits: list[Edit]) -> tuple[float, float]:
        ratio, kl = 1.0, 0.0
        for e in edits:
            t = e.strength if e.mode == "ablate" else (1 - e.strength if e.mode == "scale" else 1.0)
            hit = len(good & set(e.features)) / len(good)
            if e.mode == "clamp":
                ratio *= 1 - 0.6 * hit
                kl += harm * 0.1 * len(e.features) + (0.01 if e.strength < 0 else 0.0)
            else:
                ratio *= max(0.0, 1 - min(t, 1.0) * hit)
                kl += harm * len(e.features) * t
        return ratio, kl
    return measure


def evaluator(measure, budget: Budget, log: list, margin: float = 1.0):
    def evaluate(edits: list[Edit], stage: str) -> Candidate:
        ratio, kl = measure(edits)
        m = SplitMetrics(5, 5, 0.9, 0.9 * ratio, ratio, kl, kl, kl)
        feasible, obj, use = score(m, budget, margin)
        c = Candidate(len(log), stage, edits, m, m, feasible, obj, use)
        log.append(c)
        return c
    return evaluate


def test_search_finds_the_minimal_group_within_budget():
    req = SearchRequest.from_dict({**REQ, "budget": {"max_kl": 0.005, "max_target_change": 1.0}})
    log: list[Candidate] = []
    out = run_search([ranking("s1", 1), ranking("s2", 3)], req, evaluator(world({0, 1}), req.budget, log))
    assert out.best is not None and out.best.feasible and not out.exhausted
    feats = sorted(f for e in out.best.edits for f in e.features)
    assert feats == [0, 1] and out.best.search.target_ratio == 0.0
    assert out.candidates == log and len({c.key for c in log}) == len(log)  # each measured once
    assert {c.stage for c in log} >= {"screen", "refine", "prune", "combine"}
    assert {e.layer for c in log for e in c.edits} == {1, 3}
    # weight-delta edits past full removal are scale with a negative factor; ablate never exceeds 1
    assert all(e.strength <= 1 for c in log for e in c.edits if e.mode == "ablate")
    assert any(e.mode == "scale" and e.strength < 0 for c in log for e in c.edits)
    assert pareto_front(log, 0.005, 1.0)[0] == min(log, key=lambda c: (c.budget_use, c.search.target_ratio)).index


def test_modes_budget_and_determinism():
    req = SearchRequest.from_dict({**REQ, "modes": ["clamp"], "max_evaluations": 7})
    log: list[Candidate] = []
    out = run_search([ranking("s1", 1)], req, evaluator(world({0, 1}), req.budget, log))
    assert out.exhausted and len(out.candidates) == 7
    assert all(e.mode == "clamp" for c in out.candidates for e in c.edits)
    again: list[Candidate] = []
    out2 = run_search([ranking("s1", 1)], req, evaluator(world({0, 1}), req.budget, again))
    assert [c.key for c in out.candidates] == [c.key for c in out2.candidates]
    req = SearchRequest.from_dict({**REQ, "modes": ["scale"]})
    log = []
    run_search([ranking("s1", 1)], req, evaluator(world({0}), req.budget, log))
    assert all(e.mode == "scale" for c in log for e in c.edits)
    # a non-resid_post SAE takes no clamp
    mlp = LayerRanking("s3", "blocks.2.hook_mlp_out", 2, ranking("s3", 2).features)
    log = []
    run_search([mlp], SearchRequest.from_dict(REQ), evaluator(world({0}), Budget(), log))
    assert log and all(e.mode != "clamp" for c in log for e in c.edits)


def edge_measure(edits: list[Edit]) -> tuple[float, float]:
    """Feature 0 clamped below 0 removes more of the target the harder it pushes; KL grows as push²."""
    ratio, kl = 1.0, 0.0
    for e in edits:
        if e.mode != "clamp" or 0 not in e.features:
            kl += 1.0  # any other edit is hopeless here
            continue
        push = max(0.0, -e.strength)
        ratio *= max(0.0, 0.9 - 0.15 * push)
        kl += 0.001 * push ** 2
    return ratio, kl


def test_strength_is_bisected_to_the_edge_of_the_budget():
    """The search finds the strongest push within the budget (√10 for max_kl 0.01) to within the bisection's
    resolution, and two layers' edges combined are scaled back into the budget by one factor."""
    measure = edge_measure
    req = SearchRequest.from_dict({**REQ, "budget": {"max_kl": 0.01, "max_target_change": 1.0},
                                   "modes": ["clamp"], "max_features": 2})
    log: list[Candidate] = []
    out = run_search([ranking("s1", 1, n=2)], req, evaluator(measure, req.budget, log))
    single = [c for c in log if len(c.edits) == 1 and c.feasible]
    edge = min(c.edits[0].strength for c in single)
    assert -10 ** 0.5 - 1e-9 <= edge <= -10 ** 0.5 + 2 / 2 ** 5  # grid -1, -2, -4 (4 breaks it), then halving
    assert out.best is not None and out.best.edits[0].strength == edge
    log = []
    out = run_search([ranking("s1", 1, n=2), ranking("s2", 3, n=2)], req, evaluator(measure, req.budget, log))
    combined = [c for c in log if len(c.edits) == 2]
    assert combined and combined[0].stage == "combine" and not combined[0].feasible
    assert any(c.feasible for c in combined)
    scaled = min((c for c in combined if c.feasible and c.stage == "combine"), key=Candidate.sort_key)
    assert -scaled.edits[0].strength == pytest.approx(-scaled.edits[1].strength)  # one factor for both
    # both edits pushing ~√5 (kl 0.005 + 0.005) beat one edit at √10
    assert scaled.search.target_ratio < min(c.search.target_ratio for c in log if len(c.edits) == 1 and c.feasible)
    # strengthening then spends what the factor's bisection left of the budget
    assert out.best is not None and len(out.best.edits) == 2 and out.best.objective <= scaled.objective
    assert 0.95 <= out.best.budget_use <= 1.0


def test_search_margin_moves_the_edge():
    """With search_margin 0.5 the search counts only half the budget as spendable on the search split."""
    req = SearchRequest.from_dict({**REQ, "budget": {"max_kl": 0.01, "max_target_change": 1.0},
                                   "modes": ["clamp"], "max_features": 2, "search_margin": 0.5})
    log: list[Candidate] = []
    out = run_search([ranking("s1", 1, n=2)], req, evaluator(edge_measure, req.budget, log, req.search_margin))
    assert out.best is not None and out.best.budget_use <= 0.5
    assert -5 ** 0.5 - 1e-9 <= out.best.edits[0].strength <= -5 ** 0.5 + 0.07  # push² · 0.001 = 0.005
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="search_margin"):
            SearchRequest.from_dict({**REQ, "search_margin": bad})


def test_replayed_candidates_are_not_measured_again():
    req = SearchRequest.from_dict(REQ)
    first: list[Candidate] = []
    out = run_search([ranking("s1", 1)], req, evaluator(world({2}), req.budget, first))
    stored = {c.key: c for c in out.candidates[:5]}
    measured: list[Candidate] = []
    inner = evaluator(world({2}), req.budget, measured)

    def evaluate(edits, stage):
        return stored.get(edits_key(edits)) or inner(edits, stage)
    out2 = run_search([ranking("s1", 1)], req, evaluate)
    assert len(measured) == len(out.candidates) - 5
    assert [c.key for c in out2.candidates] == [c.key for c in out.candidates]


def test_request_validation():
    with pytest.raises(ValueError, match="exactly one"):
        SearchRequest.from_dict({**REQ, "target_text": "x"})
    with pytest.raises(ValueError, match="train_missing"):
        SearchRequest.from_dict({**REQ, "train_missing": True})
    with pytest.raises(ValueError, match="modes"):
        SearchRequest.from_dict({**REQ, "modes": []})
    with pytest.raises(ValueError):
        Budget(max_kl=0)
    with pytest.raises(ValueError):
        Edit("s", "h", 1, "ablate", float("nan"), [1])
    assert edits_key([Edit("s", "h", 1, "ablate", 1.0, [3, 1])]) == edits_key([Edit("s", "h", 1, "ablate", 1.0, [1, 3])])
    r = SearchRequest.from_dict(REQ)
    assert SearchRequest.from_dict(r.to_dict()) == r
