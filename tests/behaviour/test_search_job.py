"""The behaviour-removal job on a tiny Llama with a behaviour planted along a known SAE direction: it finds the
feature, removes the behaviour within the budget, and every number it reports is measured again here from
the patches it returns, through the inference engine (an independent path: one prompt at a time)."""
from __future__ import annotations

import math

import pytest
import torch

from interpretability_workbench.behaviour.evaluate import split_prompts
from interpretability_workbench.behaviour.report import pareto_front
from interpretability_workbench.behaviour.types import Candidate, SearchRequest
from interpretability_workbench.events import BehaviourCandidate

from .conftest import NEGATIVE, PLANTED, POSITIVE, target_id

BODY = {"positive": POSITIVE, "negative": NEGATIVE, "target_text": " the",
        "budget": {"max_kl": 1e-3, "max_target_change": 0.05}, "seed": 0}


def independent(state, texts: list[str], tid: int, patch_ids: list[str]) -> list[tuple[float, float, float]]:
    """(target before, target after, KL(original ‖ patched)) per text, one engine forward per text."""
    out = []
    for text in texts:
        orig, patched, used, _ = state.inference.session().logits(text, patch_ids)
        assert sorted(used) == sorted(patch_ids)
        lo, lp = orig.log_softmax(-1), patched.log_softmax(-1)
        out.append((float(lo[tid].exp()), float(lp[tid].exp()), float((lo.exp() * (lo - lp)).sum())))
    return out


def run_job(client, state, body=BODY) -> dict:
    r = client.post("/api/behaviours/remove", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    rec = state.behaviours.wait(job_id, 300)
    assert rec.status == "done", rec.error
    return client.get(f"/api/behaviours/{job_id}").json()


def test_search_finds_planted_feature_and_report_is_recomputed_from_the_patch(client, state, planted_sae):
    events: list[BehaviourCandidate] = []
    state.bus.on(BehaviourCandidate, events.append)
    job = run_job(client, state)
    rep = job["report"]
    assert rep["feasible"] and rep["held_out_feasible"] and rep["message"] is None
    chosen = [f["index"] for e in rep["edits"] for f in e["features"]]
    assert PLANTED in chosen and len(chosen) <= 4
    assert rep["edits"][0]["features"][0]["index"] == PLANTED  # the best-ranked feature is the planted one
    assert rep["edits"][0]["features"][0]["effect_size"] > 3
    assert rep["target_ids"] == [target_id(state)] and rep["target_tokens"] == [" the"]
    # acceptance: target below 0.1 of its original probability, KL on negatives ≤ 1e-3 (held out)
    h = rep["held_out"]
    assert h["target_before"] > 0.5 and h["target_ratio"] < 0.1 and h["kl_mean"] <= 1e-3

    # every number, again, from the returned patches through the engine
    pids = rep["patch_ids"]
    assert len(pids) == len(rep["edits"]) and all(e["patch_id"] in pids for e in rep["edits"])
    split = split_prompts(POSITIVE, NEGATIVE, 0.5, 0)
    tid = target_id(state)
    for group, metrics, per_pos, per_neg in (
            (("held_positive", "held_negative"), rep["held_out"], rep["held_out_positive"], rep["held_out_negative"]),
            (("search_positive", "search_negative"), rep["search"], None, None)):
        pos = independent(state, getattr(split, group[0]), tid, pids)
        neg = independent(state, getattr(split, group[1]), tid, pids)
        before = sum(p[0] for p in pos) / len(pos)
        after = sum(p[1] for p in pos) / len(pos)
        assert metrics["n_positive"] == len(pos) and metrics["n_negative"] == len(neg)
        assert metrics["target_before"] == pytest.approx(before, abs=1e-5)
        assert metrics["target_after"] == pytest.approx(after, abs=1e-5)
        assert metrics["target_ratio"] == pytest.approx(after / before, rel=1e-3, abs=1e-6)
        assert metrics["kl_mean"] == pytest.approx(sum(n[2] for n in neg) / len(neg), rel=1e-3, abs=1e-6)
        assert metrics["kl_max"] == pytest.approx(max(n[2] for n in neg), rel=1e-3, abs=1e-6)
        assert metrics["max_target_change"] == pytest.approx(max(abs(n[1] - n[0]) for n in neg), abs=1e-5)
        if per_pos is not None:
            assert [p["text"] for p in per_pos] == split.held_positive
            for row, (b, a, _) in zip(per_pos, pos):
                assert row["target_before"] == pytest.approx(b, abs=1e-5)
                assert row["target_after"] == pytest.approx(a, abs=1e-5)
            for row, (b, a, kl) in zip(per_neg, neg):
                assert row["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-6)
    # the patches are ordinary patches of one edit set, left enabled; /evaluate agrees too
    for pid in pids:
        p = client.get(f"/api/patches/{pid}").json()
        assert p["applied"] and p["enabled"]
        assert state.patches.get(pid).extra["edit_set"] == job["id"]
    if len(pids) == 1:
        ev = client.post(f"/api/patches/{pids[0]}/evaluate",
                         json={"texts": split.held_positive, "target_tokens": [" the"]}).json()
        assert ev["mean_after"] == pytest.approx(h["target_after"], abs=1e-5)

    # every evaluated candidate is reported (REST and WS), the Pareto flags match an independent front
    cands = client.get(f"/api/behaviours/{job['id']}/candidates").json()
    assert [c["index"] for c in cands] == list(range(rep["n_evaluated"])) == [e.index for e in events]
    assert job["n_evaluated"] == rep["n_evaluated"] and rep["best_candidate"] == job["best"]["index"]
    objs = [Candidate.from_dict(c) for c in cands]
    assert sorted(c["index"] for c in cands if c["pareto"]) == sorted(rep["pareto"])
    assert rep["pareto"] == pareto_front(objs, 1e-3, 0.05)
    for c in cands:  # no candidate off the front beats a front candidate on both axes
        if not c["pareto"]:
            assert any(f["held_out_budget_use"] <= c["held_out_budget_use"]
                       and f["held_out"]["target_ratio"] <= c["held_out"]["target_ratio"]
                       for f in cands if f["pareto"])
    best = next(c for c in cands if c["index"] == rep["best_candidate"])
    assert best["feasible"] and all(c["objective"] >= best["objective"] - 1e-12 for c in cands if c["feasible"])


def test_candidate_scores_are_exact_for_every_mode(client, state, planted_sae):
    """Scores of stored candidates (ablate, scale, clamp) equal what real patches made from them give."""
    job = run_job(client, state, {**BODY, "enable_result": False})
    cands = client.get(f"/api/behaviours/{job['id']}/candidates").json()
    split = split_prompts(POSITIVE, NEGATIVE, 0.5, 0)
    tid = target_id(state)
    picked = {}
    for c in cands:
        picked.setdefault(c["edits"][0]["mode"], c)
    assert set(picked) == {"ablate", "scale", "clamp"}
    for mode, c in picked.items():
        r = client.post(f"/api/behaviours/{job['id']}/candidates/{c['index']}/patch", json={"enabled": False})
        assert r.status_code == 201, r.text
        made = r.json()
        assert [p["mode"] for p in made] == [mode] and made[0]["features"] == c["edits"][0]["features"]
        assert made[0]["exportable_as_peft"] == (mode != "clamp")
        pids = [p["id"] for p in made]
        pos = independent(state, split.held_positive, tid, pids)
        neg = independent(state, split.held_negative, tid, pids)
        h = c["held_out"]
        assert h["target_after"] == pytest.approx(sum(p[1] for p in pos) / len(pos), abs=1e-5)
        assert h["kl_mean"] == pytest.approx(sum(n[2] for n in neg) / len(neg), rel=1e-3, abs=1e-6)
    # the job's own result patches were left disabled
    for pid in job["report"]["patch_ids"]:
        assert not state.patches.get(pid).enabled


def test_search_is_deterministic_given_the_seed(state, planted_sae):
    req = SearchRequest.from_dict({**BODY, "max_evaluations": 12})
    runs = []
    for _ in range(2):
        job = state.behaviours.start(req)
        assert state.behaviours.wait(job.id, 300).status == "done"
        runs.append(state.behaviours.candidates(job.id))
    a, b = runs
    assert len(a) == 12 and [c.key for c in a] == [c.key for c in b]
    for x, y in zip(a, b):
        assert x.stage == y.stage and x.feasible == y.feasible
        assert math.isclose(x.search.target_ratio, y.search.target_ratio, rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(x.held_out.kl_mean, y.held_out.kl_mean, rel_tol=1e-5, abs_tol=1e-9)
    rec = state.behaviours.get(job.id)
    assert rec.result["exhausted"] is True and rec.result["n_evaluated"] == 12
    # another seed splits the prompts differently
    other = split_prompts(POSITIVE, NEGATIVE, 0.5, 1)
    assert other.held_positive != split_prompts(POSITIVE, NEGATIVE, 0.5, 0).held_positive


def test_nothing_within_budget_makes_no_patch(client, state, planted_sae):
    before = {p.id for p in state.patches.list()}
    job = run_job(client, state, {**BODY, "budget": {"max_kl": 1e-9, "max_target_change": 1e-9},
                                  "modes": ["ablate"], "max_evaluations": 6})
    rep = job["report"]
    assert not rep["feasible"] and rep["patch_ids"] == [] and rep["held_out"] is None and rep["message"]
    assert {p.id for p in state.patches.list()} == before
    assert rep["pareto"] and job["best"] is None
    cands = client.get(f"/api/behaviours/{job['id']}/candidates").json()
    assert all(c["edits"][0]["mode"] == "ablate" for c in cands)
    r = client.get(f"/api/behaviours/{job['id']}/export")
    assert r.status_code == 422


def test_orig_logits_match_engine(state, planted_sae):
    """The batched, right-padded measurement equals the engine's one-prompt forward."""
    from interpretability_workbench.behaviour.evaluate import Evaluator

    split = split_prompts(POSITIVE, NEGATIVE, 0.5, 0)
    ev = Evaluator(state.lm, split, [target_id(state)], None, batch_size=3)
    with state.patches.original:
        ev.baseline()
    for i, text in enumerate(ev.texts):
        orig, _, _, _ = state.inference.session().logits(text, [])
        assert torch.allclose(ev.orig_logp[i], orig.log_softmax(-1), atol=1e-4)


def test_missing_layers_train_with_enough_optimiser_steps():
    from interpretability_workbench.behaviour.service import BehaviourService

    for tokens, batch in ((1024, 256), (60_000, 256), (100_000, 512), (300_000, 2048), (2_000_000, 4096)):
        got = BehaviourService.train_batch_size(tokens)
        assert got == batch, (tokens, got)
        assert tokens // got >= 4 and (got == 256 or tokens // got >= 128)


def test_measure_from_the_lowest_patched_block_equals_the_full_forward(state, planted_sae):
    """A clamp candidate runs only the blocks from its layer on (from the original run's resid_pre) and gives
    what a forward through every block gives; a weight edit (block 0) runs every block."""
    from interpretability_workbench.behaviour.evaluate import Evaluator
    from interpretability_workbench.model.hook_map import arch_for, get_module

    split = split_prompts(POSITIVE, NEGATIVE, 0.5, 0)
    ev = Evaluator(state.lm, split, [target_id(state)], None, batch_size=4)
    with state.patches.original:
        ev.baseline([1])
    assert set(ev.resid) == {1} and len(ev.resid[1]) == len(ev.batches)
    assert sum(int(t.numel()) * t.element_size() for t in ev.resid[1]) == ev.block_bytes()
    with state.patches.original:  # a memory cap keeps an evenly spaced subset, the highest block first
        ev.baseline([1, 2, 3, 4], max_bytes=2 * ev.block_bytes())
        assert set(ev.resid) == {1, 2}  # the tiny model has blocks 0..2: 3 and 4 do not exist, 1 and 2 fit
        ev.baseline([1, 2], max_bytes=ev.block_bytes())
        assert set(ev.resid) == {2}
        ev.baseline([1, 2], max_bytes=0)
        assert ev.resid == {}
        ev.baseline([1])
    blocks = get_module(state.lm.model, arch_for(state.lm.model).layers)
    calls: list[int] = []
    handles = [b.register_forward_hook(lambda *_a, i=i: calls.append(i)) for i, b in enumerate(blocks)]
    try:
        for mode, strength, lowest in (("clamp", -2.0, 1), ("ablate", 1.0, 0)):
            draft = state.patches.draft(sae_id=planted_sae, features=[PLANTED, 0, 7], mode=mode, strength=strength)
            with state.patches.trial([draft]) as got:
                assert got == lowest
                calls.clear()
                fast = ev.measure(got)
                assert min(calls) == lowest  # block 0 is not run for the clamp
                full = ev.measure()
            assert fast.target.shape == (len(ev.texts),)
            torch.testing.assert_close(fast.target, full.target, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(fast.kl, full.kl, atol=1e-6, rtol=1e-4)
            assert float((full.target - ev.orig_target).abs().max()) > 1e-3  # the edit changes something
    finally:
        for h in handles:
            h.remove()
