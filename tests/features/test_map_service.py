"""Feature map as a job: POST /api/saes/{id}/map runs features.map in the background, GET serves the cached map
with labels, densities and clusters (the same numbers feature_map computes directly), the CLI drives the same
service; 404 before, 409 while it runs, 422 for bad parameters."""
from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest
import torch

from interpretability_workbench.cli import main
from interpretability_workbench.events import JobProgress
from interpretability_workbench.features.map import MAP_TENSORS_NAME, feature_map
from interpretability_workbench.features.map_service import cluster_summaries

PARAMS = {"seed": 5, "n_neighbors": 8, "min_dist": 0.2, "n_clusters": 4, "n_epochs": 30}


@pytest.fixture(scope="module")
def mapped(state, client, analysed):
    sae_id, sae = analysed
    events: list[JobProgress] = []
    state.bus.on(JobProgress, lambda ev: events.append(ev) if ev.kind == "map" else None)
    r = client.get(f"/api/saes/{sae_id}/map")
    assert r.status_code == 404 and f"POST /api/saes/{sae_id}/map" in r.json()["detail"]
    assert client.get(f"/api/saes/{sae_id}/map/job").json() is None
    r = client.post(f"/api/saes/{sae_id}/map", json=PARAMS)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "map" and job["sae_id"] == sae_id and job["config"]["n_clusters"] == 4
    state.feature_maps.wait(sae_id)
    return sae_id, sae, job, events


def test_map_job_finishes_with_progress(client, mapped):
    sae_id, _, job, events = mapped
    j = client.get(f"/api/saes/{sae_id}/map/job").json()
    assert j["id"] == job["id"] and j["status"] == "done", j
    assert j["done"] == j["total"] == 2
    mine = [e for e in events if e.job_id == job["id"]]
    assert mine[-1].status == "done" and any(e.status == "running" and e.total == 2 for e in mine)


def test_map_matches_a_direct_computation(state, client, mapped):
    sae_id, sae, _, _ = mapped
    r = client.get(f"/api/saes/{sae_id}/map")
    assert r.status_code == 200, r.text
    body = r.json()
    ref = feature_map(sae.W_dec.detach().cpu(), **{**PARAMS, "init": None, "pca_dims": None})
    pts = body["points"]
    d_sae = sae.cfg.d_sae
    assert pts["index"] == list(range(d_sae))
    np.testing.assert_allclose(np.array([pts["x"], pts["y"]]).T, ref.xy.numpy(), rtol=1e-5, atol=1e-5)
    assert pts["cluster"] == ref.cluster.tolist()
    assert body["params"]["decoder_sha256"] == ref.params.decoder_sha256 and body["params"]["n_clusters"] == 4
    # labels and densities are the analysed rows'
    labels = state.features.repo.labels(sae_id)
    assert pts["label"] == [labels[i].label if i in labels else None for i in range(d_sae)]
    rows = {r["idx"]: r["density"] for r in state.db.query("SELECT idx, density FROM features WHERE sae_id = ?",
                                                             [sae_id])}
    assert pts["density"] == pytest.approx([rows.get(i) for i in range(d_sae)])
    # clusters: sizes from the points, ids by decreasing size
    sizes = Counter(pts["cluster"])
    assert [(c["id"], c["size"]) for c in body["clusters"]] == [(i, sizes[i]) for i in range(4)]
    assert [c["size"] for c in body["clusters"]] == sorted(sizes.values(), reverse=True)
    for c in body["clusters"]:
        members = {pts["label"][i] for i in range(d_sae) if pts["cluster"][i] == c["id"]}
        assert set(c["top_labels"]) <= members and len(c["top_labels"]) <= 5


def test_cluster_summary_orders_labels_by_count_then_density():
    s = cluster_summaries([0, 0, 0, 0, 1, 1], ["a", "b", "b", None, "c", "d"], [0.9, 0.1, 0.2, 0.5, 0.1, 0.3], top=2)
    assert [(c.id, c.size, c.top_labels) for c in s] == [(0, 4, ["b", "a"]), (1, 2, ["d", "c"])]


def test_stale_map_of_other_weights_is_404(state, client, make_sae):
    sae_id, sae = make_sae(seed=21, d_sae=64)
    r = client.post(f"/api/saes/{sae_id}/map", json={**PARAMS, "n_epochs": 5})
    assert r.status_code == 202
    state.feature_maps.wait(sae_id)
    assert client.get(f"/api/saes/{sae_id}/map").status_code == 200
    # the decoder changes: the cached map no longer describes it
    with torch.no_grad():
        state.saes.get(sae_id).sae.W_dec.mul_(-1.0).add_(0.01)
    r = client.get(f"/api/saes/{sae_id}/map")
    assert r.status_code == 404 and "recompute" in r.json()["detail"]


def test_map_errors(state, client, make_sae, mapped):
    assert client.post("/api/saes/nope/map", json={}).status_code == 404
    assert client.get("/api/saes/nope/map").status_code == 404
    sae_id = mapped[0]
    assert client.post(f"/api/saes/{sae_id}/map", json={"n_neighbors": 1}).status_code == 422
    assert client.post(f"/api/saes/{sae_id}/map", json={"init": "tsne"}).status_code == 422
    small, _ = make_sae(seed=3, d_sae=16)
    r = client.post(f"/api/saes/{small}/map", json={"n_neighbors": 20})
    assert r.status_code == 422 and "n_neighbors" in r.json()["detail"]


def test_409_while_the_map_runs(state, client, make_sae):
    sae_id, _ = make_sae(seed=31, d_sae=64)
    gate, entered = threading.Event(), threading.Event()
    # hold the job at its first progress report: the publish of the 'running' stage blocks on the gate
    def hold(ev: JobProgress) -> None:
        if ev.kind == "map" and ev.status == "running" and ev.total == 2 and ev.done == 0:
            entered.set()
            gate.wait(30)
    remove = state.bus.on(JobProgress, hold)
    try:
        assert client.post(f"/api/saes/{sae_id}/map", json={**PARAMS, "n_epochs": 5}).status_code == 202
        assert entered.wait(30)
        r = client.get(f"/api/saes/{sae_id}/map")
        assert r.status_code == 409 and "being computed" in r.json()["detail"]
        assert client.post(f"/api/saes/{sae_id}/map", json={}).status_code == 409
    finally:
        gate.set()
        state.feature_maps.wait(sae_id)
        remove()
    assert client.get(f"/api/saes/{sae_id}/map").status_code == 200


def test_cli_map(tmp_path, monkeypatch, capsys, make_sae):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    sae_id, sae = make_sae(seed=41, d_sae=48)
    monkeypatch.setenv("IWB_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("IWB_DEVICE", "cpu")
    st = WorkbenchState(Settings())
    st.saes.register(sae, source="imported", sae_id=sae_id)
    folder = st.saes.row(sae_id).path
    st.close()
    assert main(["map", sae_id, "--seed", "2", "--clusters", "3", "--epochs", "10", "--n-neighbors", "6"]) == 0
    out = capsys.readouterr().out
    assert f"mapped 48 features of {sae_id} into 3 clusters" in out
    from pathlib import Path
    assert (Path(folder) / MAP_TENSORS_NAME).is_file()
    assert main(["map", "missing"]) == 2


def test_a_failing_job_is_recorded(state, client, make_sae):
    import shutil
    from pathlib import Path

    sae_id, _ = make_sae(seed=51, d_sae=40)
    folder = Path(state.saes.row(sae_id).path)
    gate, entered = threading.Event(), threading.Event()
    seen: list[JobProgress] = []

    def hold(ev: JobProgress) -> None:
        if ev.kind != "map":
            return
        seen.append(ev)
        if ev.status == "running" and ev.total == 2 and ev.done == 0:
            entered.set()
            gate.wait(30)
    remove = state.bus.on(JobProgress, hold)
    try:
        assert client.post(f"/api/saes/{sae_id}/map", json={**PARAMS, "n_epochs": 5}).status_code == 202
        assert entered.wait(30)
        shutil.rmtree(folder)  # the map has nowhere to go
    finally:
        gate.set()
        state.feature_maps.wait(sae_id)
        remove()
    j = client.get(f"/api/saes/{sae_id}/map/job").json()
    assert j["status"] == "failed" and "save the SAE before its map" in j["error"]
    assert seen[-1].status == "failed" and seen[-1].detail == j["error"]


def test_cancel_stops_the_map_before_it_saves(state, client, make_sae):
    """Cancelled at the last stage (saving): the job ends 'cancelled', the map saved before is untouched;
    cancelled at the first stage of a fresh SAE: no map at all. 409 when nothing runs, 404 for an unknown SAE."""
    from pathlib import Path

    sae_id, _ = make_sae(seed=61, d_sae=40)
    assert client.post(f"/api/saes/{sae_id}/map/cancel").status_code == 409
    assert client.post("/api/saes/nope/map/cancel").status_code == 404
    assert client.post(f"/api/saes/{sae_id}/map", json={**PARAMS, "n_epochs": 5}).status_code == 202
    state.feature_maps.wait(sae_id)
    before = client.get(f"/api/saes/{sae_id}/map").json()
    blob = (Path(state.saes.row(sae_id).path) / MAP_TENSORS_NAME).read_bytes()

    def run_and_cancel(sid: str, done: int, body: dict) -> tuple[dict, list[JobProgress]]:
        gate, entered = threading.Event(), threading.Event()
        seen: list[JobProgress] = []

        def hold(ev: JobProgress) -> None:
            if ev.kind != "map":
                return
            seen.append(ev)
            if ev.status == "running" and ev.done == done and not entered.is_set():
                entered.set()
                gate.wait(30)
        remove = state.bus.on(JobProgress, hold)
        try:
            assert client.post(f"/api/saes/{sid}/map", json=body).status_code == 202
            assert entered.wait(30)
            r = client.post(f"/api/saes/{sid}/map/cancel")
            assert r.status_code == 202, r.text
            assert r.json()["kind"] == "map" and r.json()["status"] == "running"
        finally:
            gate.set()
            state.feature_maps.wait(sid)
            remove()
        return client.get(f"/api/saes/{sid}/map/job").json(), seen

    # a different seed would give another layout: had it been saved, the map would differ
    j, seen = run_and_cancel(sae_id, 1, {**PARAMS, "seed": 9, "n_epochs": 5})
    assert j["status"] == "cancelled" and "nothing was written" in j["error"], j
    assert seen[-1].status == "cancelled" and seen[-1].job_id == j["id"]
    assert (Path(state.saes.row(sae_id).path) / MAP_TENSORS_NAME).read_bytes() == blob
    assert client.get(f"/api/saes/{sae_id}/map").json() == before
    assert client.post(f"/api/saes/{sae_id}/map/cancel").status_code == 409

    fresh, _ = make_sae(seed=62, d_sae=40)
    j, _ = run_and_cancel(fresh, 0, {**PARAMS, "n_epochs": 5})
    assert j["status"] == "cancelled" and j["done"] == 0
    assert client.get(f"/api/saes/{fresh}/map").status_code == 404
    assert not (Path(state.saes.row(fresh).path) / MAP_TENSORS_NAME).exists()
