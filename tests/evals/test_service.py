"""Evaluations as a job: POST /api/saes/{id}/evals runs evals.suite in the background, GET returns what
evaluate_sae computes directly, /api/evals/compare sets SAEs side by side; 404 before, 409 while running, 422 for
bad requests; the CLI drives the same service."""
from __future__ import annotations

import threading

import pytest

from interpretability_workbench.activations.corpus import load_texts
from interpretability_workbench.cli import main
from interpretability_workbench.evals.service import RESULT_NAME, EvalRequest
from interpretability_workbench.evals.suite import evaluate_sae
from interpretability_workbench.events import JobProgress
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

HOOK = "blocks.1.hook_resid_post"
BODY = {"which": ["absorption", "sparse_probing", "density"], "density_tokens": 300, "probe_docs": 120,
        "probe_per_class": 60, "ks": [1, 2], "absorption_per_letter": 16, "absorption_min_probe_f1": 0.0, "seed": 1}


def _register(state, d_sae: int, k: int, seed: int) -> tuple[str, SparseAutoencoder]:
    lm = state.require_model()
    sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=d_sae, k=k, hook_name=HOOK, model_id=lm.model_id,
                                      context_size=32, apply_b_dec_to_input=False))
    sae.reset_parameters(seed=seed)
    return state.saes.register(sae, source="imported"), sae


@pytest.fixture(scope="module")
def evaluated(state, client):
    ids = {}
    events: list[JobProgress] = []
    remove = state.bus.on(JobProgress, lambda ev: events.append(ev) if ev.kind == "evals" else None)
    for name, (d_sae, k, seed) in {"narrow": (64, 4, 0), "wide": (128, 8, 1)}.items():
        sae_id, sae = _register(state, d_sae, k, seed)
        r = client.get(f"/api/saes/{sae_id}/evals")
        assert r.status_code == 404 and f"POST /api/saes/{sae_id}/evals" in r.json()["detail"]
        r = client.post(f"/api/saes/{sae_id}/evals", json=BODY)
        assert r.status_code == 202, r.text
        assert r.json()["kind"] == "evals"
        state.evals.wait(sae_id)
        ids[name] = (sae_id, sae, r.json()["id"])
    remove()
    return ids, events


def test_job_finishes_with_progress(client, evaluated):
    ids, events = evaluated
    sae_id, _, job_id = ids["narrow"]
    j = client.get(f"/api/saes/{sae_id}/evals/job").json()
    assert j["id"] == job_id and j["status"] == "done" and j["done"] == j["total"] == 3, j
    mine = [e for e in events if e.job_id == job_id]
    assert mine[-1].status == "done"
    assert {e.detail for e in mine} >= {"density", "sparse probing", "absorption"}


def test_result_matches_a_direct_evaluation(state, client, evaluated):
    ids, _ = evaluated
    sae_id, sae, _ = ids["wide"]
    body = client.get(f"/api/saes/{sae_id}/evals").json()
    req = EvalRequest(**BODY)
    lm = state.require_model()
    ref = evaluate_sae(lm, sae, texts=load_texts(None),
                       contexts=state.features.analysis_contexts(lm, sae, None, 310),  # 10 contexts of 32
                       absorption_cfg=req.absorption_config(), probing_cfg=req.probing_config(),
                       density_tokens=req.density_tokens)
    want = ref.summary()
    assert body["summary"].keys() == want.keys()
    for k, v in want.items():
        assert body["summary"][k] == pytest.approx(v, abs=1e-9), k
    assert body["result"]["density"]["counts"] == ref.density.counts
    assert body["result"]["density"]["n_tokens"] == 300
    assert body["request"]["ks"] == [1, 2] and body["result"]["d_sae"] == 128
    assert [t["task"] for t in body["result"]["sparse_probing"]["tasks"]] == [t.task for t in ref.sparse_probing.tasks]
    from pathlib import Path
    assert (Path(state.saes.row(sae_id).path) / RESULT_NAME).is_file()


def test_compare_rows(state, client, evaluated):
    ids, _ = evaluated
    a, b = ids["narrow"][0], ids["wide"][0]
    r = client.get("/api/evals/compare", params={"sae_ids": f"{a},{b}"})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [row["sae_id"] for row in rows] == [a, b] and [row["d_sae"] for row in rows] == [64, 128]
    assert rows[0].keys() == rows[1].keys()
    for row in rows:
        summary = client.get(f"/api/saes/{row['sae_id']}/evals").json()["summary"]
        assert {k: row[k] for k in summary} == summary
    assert client.get("/api/evals/compare", params={"sae_ids": f"{a},nope"}).status_code == 404


def test_subset_and_errors(state, client, evaluated):
    ids, _ = evaluated
    sae_id = ids["narrow"][0]
    assert client.post("/api/saes/nope/evals", json=BODY).status_code == 404
    assert client.post(f"/api/saes/{sae_id}/evals", json={"which": ["nope"]}).status_code == 422
    assert client.post(f"/api/saes/{sae_id}/evals", json={"which": []}).status_code == 422
    assert client.post(f"/api/saes/{sae_id}/evals", json={"ks": [0]}).status_code == 422
    # only density: the other sections are null, the summary says so
    other, _ = _register(state, 32, 2, 9)
    assert client.post(f"/api/saes/{other}/evals", json={**BODY, "which": ["density"]}).status_code == 202
    state.evals.wait(other)
    body = client.get(f"/api/saes/{other}/evals").json()
    assert body["result"]["absorption"] is None and body["summary"]["absorption_fraction"] is None
    assert body["summary"]["dead_fraction"] is not None


def test_409_while_evaluating(state, client):
    sae_id, _ = _register(state, 32, 2, 11)
    gate, entered = threading.Event(), threading.Event()

    def hold(ev: JobProgress) -> None:
        if ev.kind == "evals" and ev.detail == "density":
            entered.set()
            gate.wait(30)
    remove = state.bus.on(JobProgress, hold)
    try:
        assert client.post(f"/api/saes/{sae_id}/evals", json={**BODY, "which": ["density"]}).status_code == 202
        assert entered.wait(30)
        r = client.get(f"/api/saes/{sae_id}/evals")
        assert r.status_code == 409 and "being evaluated" in r.json()["detail"]
        assert client.post(f"/api/saes/{sae_id}/evals", json=BODY).status_code == 409
    finally:
        gate.set()
        state.evals.wait(sae_id)
        remove()
    assert client.get(f"/api/saes/{sae_id}/evals").status_code == 200


def test_cli_evals(tmp_path, monkeypatch, capsys, state, tiny_llama_dir):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    sae_id, sae = _register(state, 32, 2, 13)
    monkeypatch.setenv("IWB_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("IWB_DEVICE", "cpu")
    monkeypatch.setenv("IWB_DTYPE", "float32")
    st = WorkbenchState(Settings())
    st.saes.register(sae, source="imported", sae_id=sae_id)
    st.close()
    args = ["evals", sae_id, "--model", str(tiny_llama_dir), "--which", "density", "--density-tokens", "200"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"evaluated {sae_id} (density)" in out and "dead_fraction" in out
    assert main(["evals", sae_id, "--model", str(tiny_llama_dir), "--which", "bogus"]) == 2


def test_cancel_keeps_the_previous_evaluation(state, client):
    """A cancelled evaluation ends 'cancelled' between stages and never writes evals.json: the previous result
    stays byte for byte; on an SAE never evaluated there is still none. 409 when none runs."""
    from pathlib import Path

    sae_id, _ = _register(state, 32, 2, 17)
    assert client.post(f"/api/saes/{sae_id}/evals/cancel").status_code == 409
    assert client.post("/api/saes/nope/evals/cancel").status_code == 404
    assert client.post(f"/api/saes/{sae_id}/evals", json={**BODY, "which": ["density"]}).status_code == 202
    state.evals.wait(sae_id)
    path = Path(state.saes.row(sae_id).path) / RESULT_NAME
    stored = path.read_bytes()

    def run_and_cancel(sid: str, at: str) -> tuple[dict, list[JobProgress]]:
        gate, entered = threading.Event(), threading.Event()
        seen: list[JobProgress] = []

        def hold(ev: JobProgress) -> None:
            if ev.kind != "evals":
                return
            seen.append(ev)
            if ev.detail == at and not entered.is_set():
                entered.set()
                gate.wait(30)
        remove = state.bus.on(JobProgress, hold)
        try:
            assert client.post(f"/api/saes/{sid}/evals", json=BODY).status_code == 202
            assert entered.wait(30)
            r = client.post(f"/api/saes/{sid}/evals/cancel")
            assert r.status_code == 202 and r.json()["kind"] == "evals", r.text
        finally:
            gate.set()
            state.evals.wait(sid)
            remove()
        return client.get(f"/api/saes/{sid}/evals/job").json(), seen

    j, seen = run_and_cancel(sae_id, "saving the result")  # every stage computed, stopped before the write
    assert j["status"] == "cancelled" and "nothing was written" in j["error"], j
    assert seen[-1].status == "cancelled"
    assert path.read_bytes() == stored
    assert client.get(f"/api/saes/{sae_id}/evals").json()["request"]["which"] == ["density"]

    fresh, _ = _register(state, 32, 2, 18)
    j, seen = run_and_cancel(fresh, "density")  # stopped inside the first stage: the later ones never ran
    assert j["status"] == "cancelled" and j["done"] == 0
    assert not any(e.detail in ("sparse probing", "absorption") for e in seen)
    assert client.get(f"/api/saes/{fresh}/evals").status_code == 404
