"""The job survives a server restart (resumes from its stored candidates, measuring only the new ones, and ends
with exactly the candidates of an uninterrupted job) and cancels cleanly."""
from __future__ import annotations

import threading

from interpretability_workbench.behaviour.types import SearchRequest
from interpretability_workbench.events import BehaviourCandidate, JobProgress
from interpretability_workbench.patches import inject
from interpretability_workbench.state import WorkbenchState

from .conftest import NEGATIVE, POSITIVE, register_planted_sae

BODY = {"positive": POSITIVE, "negative": NEGATIVE, "target_text": " the",
        "budget": {"max_kl": 1e-3, "max_target_change": 0.05}, "seed": 0}


def _state(settings) -> WorkbenchState:
    st = WorkbenchState(settings)
    st.load_model(settings.model)
    return st


def _stop_after(st: WorkbenchState, n: int) -> threading.Event:
    reached = threading.Event()

    def on(ev: BehaviourCandidate) -> None:
        if ev.index + 1 >= n:
            reached.set()
    st.bus.on(BehaviourCandidate, on)
    return reached


def _wrappers(model) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, inject.WRAPPERS)]


def test_job_survives_a_restart(settings):
    req = SearchRequest.from_dict(BODY)
    st = _state(settings)
    try:
        register_planted_sae(st)
        reached = _stop_after(st, 5)
        job = st.behaviours.start(req)
        assert reached.wait(300)
        st.shutdown()  # the server stops: the job stops before its next candidate
        rec = st.behaviours.get(job.id)
        assert rec.status == "interrupted" and rec.phase == "searching"
        stored = st.behaviours.candidates(job.id)
        assert 5 <= len(stored) < 30
        assert not _wrappers(st.lm.model)
        st.behaviours.repo.update(job.id, status="running")  # as if the process had been killed mid-job
    finally:
        st.close()

    st2 = _state(settings)
    try:
        rec = st2.behaviours.get(job.id)
        assert rec.status == "interrupted"  # marked at start-up, like training runs
        new_events: list[BehaviourCandidate] = []
        st2.bus.on(BehaviourCandidate, new_events.append)
        st2.behaviours.resume(job.id)
        done = st2.behaviours.wait(job.id, 300)
        assert done.status == "done", done.error
        assert done.attempt == 1
        resumed = st2.behaviours.candidates(job.id)
        records = st2.behaviours.repo.candidates(job.id)
        # the stored candidates are kept as they were; only new ones were measured (and announced)
        assert [c.to_dict() for c in resumed[:len(stored)]] == [c.to_dict() for c in stored]
        assert all(r.attempt == 0 for r in records[:len(stored)]) and all(r.attempt == 1 for r in records[len(stored):])
        assert [e.index for e in new_events] == list(range(len(stored), len(resumed)))
        # the same candidates, in the same order, as an uninterrupted job with the same seed
        fresh = st2.behaviours.start(req)
        assert st2.behaviours.wait(fresh.id, 300).status == "done"
        ref = st2.behaviours.candidates(fresh.id)
        assert [c.key for c in resumed] == [c.key for c in ref]
        assert [c.stage for c in resumed] == [c.stage for c in ref]
        for a, b in zip(resumed, ref):
            assert abs(a.held_out.target_ratio - b.held_out.target_ratio) < 1e-6
        res, ref_res = done.result, st2.behaviours.get(fresh.id).result
        assert res["best_candidate"] == ref_res["best_candidate"] and res["pareto"] == ref_res["pareto"]
        assert res["held_out"]["target_ratio"] < 0.1 and res["held_out"]["kl_mean"] <= 1e-3
    finally:
        st2.shutdown()
        st2.close()


def test_cancel_is_clean_and_resumable(client, state, planted_sae):
    user = state.patches.create(sae_id=planted_sae, features=[3], mode="steer", strength=2.0, enabled=False)
    before_patches = {p.id for p in state.patches.list()}
    progress: list[JobProgress] = []
    state.bus.on(JobProgress, progress.append)
    reached = _stop_after(state, 3)
    r = client.post("/api/behaviours/remove", json=BODY)
    job_id = r.json()["job_id"]
    assert reached.wait(300)
    r = client.post(f"/api/behaviours/{job_id}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelling"
    rec = state.behaviours.wait(job_id, 300)
    assert rec.status == "cancelled"
    assert {p.id for p in state.patches.list()} == before_patches  # no patch made
    assert state.patches.status(user.id) == (True, None) and not state.patches.get(user.id).enabled
    assert all(set(inject.find_wrapper(state.lm.model, n).entries) == {user.id} for n in _wrappers(state.lm.model))
    assert state.inference.compare("Open the file and return").kl == 0.0  # lock free, nothing left switched on
    assert progress[-1].job_id == job_id and progress[-1].status == "cancelled"
    assert client.post(f"/api/behaviours/{job_id}/cancel").status_code == 409
    n = rec.n_evaluated
    assert n >= 3 and len(state.behaviours.candidates(job_id)) == n
    r = client.post(f"/api/behaviours/{job_id}/resume")
    assert r.status_code == 202
    rec = state.behaviours.wait(job_id, 300)
    assert rec.status == "done" and rec.result["n_evaluated"] > n
    assert client.post(f"/api/behaviours/{job_id}/resume").status_code == 409  # done jobs are not resumable
