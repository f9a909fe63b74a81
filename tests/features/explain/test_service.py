"""The explanation job wired into the workbench: REST start/status/cancel/resume, results stored on the
feature rows (search and sort cover them), per-feature errors that never stop the job, and resume skipping
what is done. The endpoint explainer talks to a real HTTP server speaking OpenAI chat-completions."""
from __future__ import annotations

import time

from interpretability_workbench.events import JobProgress
from interpretability_workbench.features.explanations import EndpointSettings


def _wait_job(client, sae_id: str, timeout: float = 600) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        j = client.get(f"/api/saes/{sae_id}/explanations/job").json()
        if j and j["status"] not in ("queued", "running"):
            return j
        time.sleep(0.2)
    raise AssertionError("explanation job did not finish")


def _endpoint(state, server) -> None:
    state.explanations.endpoint = EndpointSettings(server.url, "tiny-rule", None, timeout_s=30)


def test_endpoint_job_stores_scores_search_sort_and_resume(client, state, analysed, chat_server):
    sae_id, _ = analysed
    chat_server.mode = "rule"
    _endpoint(state, chat_server)
    feats = [r["index"] for r in client.get(f"/api/saes/{sae_id}/features",
                                            params={"sort": "-density", "limit": 4}).json()["items"]]
    events: list[JobProgress] = []
    remove = state.bus.on(JobProgress, events.append)
    try:
        r = client.post(f"/api/saes/{sae_id}/explanations", json={"features": feats, "explainer": "endpoint",
                                                                   "n_contexts": 16})
        assert r.status_code == 202, r.text
        job = _wait_job(client, sae_id)
    finally:
        remove()
    assert job["status"] == "done" and job["done"] == 4 and job["total"] == 4 and job["errors"] == 0, job
    assert events and events[-1].status == "done" and events[-1].kind == "explain"
    for f in feats:
        d = client.get(f"/api/saes/{sae_id}/features/{f}").json()
        ex = d["explanation_detail"]
        assert ex["text"].startswith('the word "') and ex["explainer_name"].startswith("openai:tiny-rule")
        assert 0 <= ex["detection"] <= 1 and 0 <= ex["fuzzing"] <= 1 and ex["error"] is None
        assert d["explanation"] == ex["text"] and d["label"] == d["auto_label"]  # the label is untouched
    ranked = client.get(f"/api/saes/{sae_id}/features", params={"sort": "-detection", "limit": 4}).json()["items"]
    assert sorted(x["index"] for x in ranked) == sorted(feats)  # explained features first (nulls last)
    assert [x["detection"] for x in ranked] == sorted((x["detection"] for x in ranked), reverse=True)
    word = client.get(f"/api/saes/{sae_id}/features/{feats[0]}").json()["explanation"].split('"')[1]
    found = client.get(f"/api/saes/{sae_id}/features", params={"q": f'word "{word}"'}).json()["items"]
    assert feats[0] in [x["index"] for x in found]
    # a user label wins over the explanation, which is kept
    client.patch(f"/api/saes/{sae_id}/features/{feats[0]}", json={"label": "mine"})
    d = client.get(f"/api/saes/{sae_id}/features/{feats[0]}").json()
    assert d["label"] == "mine" and d["explanation"].startswith('the word "')
    # resume: everything is done, so nothing is asked of the endpoint again
    n = len(chat_server.requests)
    r = client.post(f"/api/saes/{sae_id}/explanations/resume")
    assert r.status_code == 202, r.text
    job = _wait_job(client, sae_id)
    assert job["status"] == "done" and job["done"] == 4 and len(chat_server.requests) == n


def test_endpoint_failures_are_stored_per_feature(client, state, analysed, chat_server):
    sae_id, _ = analysed
    chat_server.mode, chat_server.status = "status", 401
    _endpoint(state, chat_server)
    r = client.post(f"/api/saes/{sae_id}/explanations", json={"features": [0, 1, 2], "explainer": "endpoint",
                                                               "explainer_model": "other", "n_contexts": 16})
    assert r.status_code == 202
    job = _wait_job(client, sae_id)
    assert job["status"] == "done" and job["done"] == 3 and job["errors"] == 3
    for f in (0, 1, 2):
        ex = client.get(f"/api/saes/{sae_id}/features/{f}").json()["explanation_detail"]
        assert ex["text"] is None and ex["error_kind"] == "unauthorized" and "401" in ex["error"]


def test_loaded_model_explainer_runs_to_the_end(client, state, analysed):
    """The tiny random model cannot follow the format: every feature ends with a stored error, the job is done."""
    sae_id, _ = analysed
    r = client.post(f"/api/saes/{sae_id}/explanations", json={"features": [3, 4], "explainer": "loaded",
                                                               "score": False, "n_contexts": 8})
    assert r.status_code == 202, r.text
    job = _wait_job(client, sae_id)
    assert job["status"] == "done" and job["done"] == 2
    for f in (3, 4):
        ex = client.get(f"/api/saes/{sae_id}/features/{f}").json()["explanation_detail"]
        assert ex["explainer_name"].startswith("local:") and (ex["text"] or ex["error"])


def test_bad_requests(client, state, make_sae, analysed):
    fresh, _ = make_sae(seed=21)
    r = client.post(f"/api/saes/{fresh}/explanations", json={})
    assert r.status_code == 422 and "analysis" in r.json()["detail"]
    sae_id, _ = analysed
    state.explanations.endpoint = EndpointSettings(None, None, None)
    r = client.post(f"/api/saes/{sae_id}/explanations", json={"explainer": "endpoint"})
    assert r.status_code == 422 and "IWB_EXPLAINER_URL" in r.json()["detail"]
    r = client.post(f"/api/saes/{sae_id}/explanations", json={"explainer": "local"})
    assert r.status_code == 422 and "explainer_model" in r.json()["detail"]
    r = client.post(f"/api/saes/{sae_id}/explanations", json={"features": [10**6]})
    assert r.status_code == 422 and "not been analysed" in r.json()["detail"]
    assert client.post("/api/saes/sae_nope/explanations", json={}).status_code == 404
    assert client.post(f"/api/saes/{sae_id}/explanations/cancel").status_code == 409


def test_force_re_explains_replaces_and_exposes_errors(client, state, analysed, chat_server):
    """Without force a second request asks the explainer nothing; with force it explains and scores again and
    the new result replaces the stored one (the user's label stays). A failed result shows on the list rows and
    the detail (explanation_error / _kind); resuming a forced job skips only what that job did."""
    sae_id, _ = analysed
    _endpoint(state, chat_server)
    chat_server.mode = "rule"
    feats = [5, 6]
    body = {"features": feats, "explainer": "endpoint", "explainer_model": "forcer", "n_contexts": 16}
    assert client.post(f"/api/saes/{sae_id}/explanations", json=body).status_code == 202
    assert _wait_job(client, sae_id)["status"] == "done"
    first = {f: client.get(f"/api/saes/{sae_id}/features/{f}").json() for f in feats}
    assert all(d["explanation"] and d["explanation_error"] is None for d in first.values())
    client.patch(f"/api/saes/{sae_id}/features/5", json={"label": "mine"})

    n = len(chat_server.requests)
    assert client.post(f"/api/saes/{sae_id}/explanations", json=body).status_code == 202
    assert _wait_job(client, sae_id)["status"] == "done" and len(chat_server.requests) == n  # skipped

    chat_server.mode = "refusal"
    r = client.post(f"/api/saes/{sae_id}/explanations", json={**body, "force": True})
    assert r.status_code == 202 and r.json()["config"]["force"] is True, r.text
    job = _wait_job(client, sae_id)
    assert job["status"] == "done" and job["done"] == 2 and job["errors"] == 2, job
    assert len(chat_server.requests) == n + 2  # one refused explanation request per feature, nothing scored
    for f in feats:
        d = client.get(f"/api/saes/{sae_id}/features/{f}").json()
        ex = d["explanation_detail"]
        assert ex["text"] is None and d["explanation"] is None and ex["created_at"] > \
            first[f]["explanation_detail"]["created_at"]
        assert d["explanation_error_kind"] == ex["error_kind"] == "refused"
        assert d["explanation_error"] == ex["error"] and "refused" in d["explanation_error"]
    assert client.get(f"/api/saes/{sae_id}/features/5").json()["label"] == "mine"
    rows = {x["index"]: x for x in client.get(f"/api/saes/{sae_id}/features",
                                               params={"sort": "index", "limit": 10}).json()["items"]}
    assert rows[5]["explanation_error_kind"] == "refused" and "refused" in rows[5]["explanation_error"]
    assert rows[5]["label"] == "mine" and rows[6]["label"] == rows[6]["auto_label"]

    # resuming the forced job: both features were done by it, nothing is asked again
    assert client.post(f"/api/saes/{sae_id}/explanations/resume").status_code == 202
    job = _wait_job(client, sae_id)
    assert job["status"] == "done" and job["config"]["force"] and len(chat_server.requests) == n + 2

    # forced again with a working explainer: the explanation is back, the error gone
    chat_server.mode = "rule"
    assert client.post(f"/api/saes/{sae_id}/explanations", json={**body, "force": True}).status_code == 202
    assert _wait_job(client, sae_id)["errors"] == 0
    for f in feats:
        d = client.get(f"/api/saes/{sae_id}/features/{f}").json()
        assert d["explanation"] == first[f]["explanation"] and d["explanation_error"] is None
        assert d["detection"] == first[f]["detection"] and d["fuzzing"] == first[f]["fuzzing"]


def test_cli_force_flag():
    from interpretability_workbench.cli import build_parser

    p = build_parser()
    assert p.parse_args(["explain", "--sae", "s"]).force is False
    assert p.parse_args(["explain", "--sae", "s", "--force"]).force is True
