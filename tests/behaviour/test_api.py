"""/api/behaviours: request errors with their status codes, one job at a time, training missing layers through
the training service, the edit set as one PEFT adapter (checked against peft), and the WS event's wire twin."""
from __future__ import annotations

import io
import zipfile
from dataclasses import fields

import pytest
import torch
from pydantic import ValidationError

from interpretability_workbench.behaviour.export import export_edit_set
from interpretability_workbench.events import EVENT_TYPES, BehaviourCandidate
from interpretability_workbench.model.tokenize import encode_prompt
from interpretability_workbench.server.schemas.ws import EVENT_MESSAGES
from interpretability_workbench.server.ws import event_message

from .conftest import NEGATIVE, POSITIVE, register_planted_sae

BODY = {"positive": POSITIVE, "negative": NEGATIVE, "target_text": " the",
        "budget": {"max_kl": 1e-3, "max_target_change": 0.05}, "seed": 0}


def test_request_errors(client, state):
    post = lambda body: client.post("/api/behaviours/remove", json=body)  # noqa: E731
    r = post(BODY)
    assert r.status_code == 422 and "no SAE fits" in r.json()["detail"]
    sid = register_planted_sae(state)
    r = post({**BODY, "layers": [1, 2]})
    assert r.status_code == 422 and "layers 2 have no resid_post SAE" in r.json()["detail"]
    assert "train_missing=true" in r.json()["detail"]
    assert post({**BODY, "layers": [7], "train_missing": True}).status_code == 422  # the model has 3 layers
    assert post({**BODY, "sae_ids": ["sae_nope"]}).status_code == 404
    assert post({**BODY, "target_tokens": [" the"]}).status_code == 422  # both targets
    assert post({k: v for k, v in BODY.items() if k != "target_text"}).status_code == 422  # neither
    assert post({**BODY, "target_tokens": [10_000], "target_text": None}).status_code == 422  # out of vocab
    assert post({**BODY, "positive": ["x"]}).status_code == 422  # fewer than 2
    assert post({**BODY, "negative": ["ok", " "]}).status_code == 422  # empty prompt
    assert post({**BODY, "modes": ["steer"]}).status_code == 422
    assert post({**BODY, "search_margin": 1.5}).status_code == 422
    assert post({**BODY, "search_margin": 0}).status_code == 422
    assert client.get("/api/behaviours/bjob_nope").status_code == 404
    assert client.post("/api/behaviours/bjob_nope/cancel").status_code == 404
    r = post({**BODY, "sae_ids": [sid], "max_evaluations": 3})
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    second = post(BODY)
    assert second.status_code in (202, 409)  # 409 while the first runs (it may already be done)
    state.behaviours.wait(job_id, 300)
    if second.status_code == 202:
        state.behaviours.wait(second.json()["job_id"], 300)
    assert client.post(f"/api/behaviours/{job_id}/candidates/99/patch", json={}).status_code == 404
    jobs = client.get("/api/behaviours").json()
    assert job_id in [j["id"] for j in jobs] and all(j["status"] == "done" for j in jobs)
    assert client.delete(f"/api/behaviours/{job_id}").status_code == 204
    assert client.get(f"/api/behaviours/{job_id}").status_code == 404
    assert state.behaviours.repo.candidates(job_id) == []


def test_clamp_only_result_is_not_peft_exportable(client, state, planted_sae):
    r = client.post("/api/behaviours/remove", json={**BODY, "modes": ["clamp"], "budget": {"max_kl": 0.01}})
    job_id = r.json()["job_id"]
    assert state.behaviours.wait(job_id, 300).status == "done"
    rep = client.get(f"/api/behaviours/{job_id}").json()["report"]
    assert rep["patch_ids"] and all(e["mode"] == "clamp" for e in rep["edits"])
    assert rep["peft_exportable"] is False and "clamp" in rep["export_note"]
    r = client.get(f"/api/behaviours/{job_id}/export")
    assert r.status_code == 422 and "native" in r.json()["detail"]


def _peft_logits(folder, planted_dir, ids):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(planted_dir), dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1]


def _unzip(data: bytes, dest):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(dest)
    return next(p.parent for p in dest.rglob("adapter_config.json"))


def test_edit_set_exports_as_one_peft_adapter(client, state, planted_sae, planted_dir, tmp_path):
    r = client.post("/api/behaviours/remove", json={**BODY, "modes": ["ablate", "scale"]})
    job_id = r.json()["job_id"]
    assert state.behaviours.wait(job_id, 300).status == "done"
    rep = client.get(f"/api/behaviours/{job_id}").json()["report"]
    assert rep["peft_exportable"] is True
    r = client.get(f"/api/behaviours/{job_id}/export")
    assert r.status_code == 200 and "PEFT" in r.headers["x-export-note"]
    folder = _unzip(r.content, tmp_path / "a")
    ids = encode_prompt(state.lm, POSITIVE[0])
    _, patched, _, _ = state.inference.session().logits(POSITIVE[0], rep["patch_ids"])
    assert torch.allclose(_peft_logits(folder, planted_dir, ids).softmax(-1), patched.softmax(-1), atol=1e-5)

    # two patches on overlapping modules (ablate at layer 1, scale at layer 2): ranks stacked in one adapter
    from patches.conftest import make_sae

    sid2, _ = make_sae(state, layer=2, d_sae=16, seed=4)
    p1 = state.patches.create(sae_id=planted_sae, features=[5, 7], mode="ablate", strength=0.8)
    p2 = state.patches.create(sae_id=sid2, features=[1, 2, 3], mode="scale", strength=-0.5)
    ex = export_edit_set(state.patches, state.model, [p1.id, p2.id], "set", meta={})
    folder = _unzip(ex.data, tmp_path / "b")
    text = NEGATIVE[2]
    ids = encode_prompt(state.lm, text)
    _, patched, _, _ = state.inference.session().logits(text, [p1.id, p2.id])
    _, only_one, _, _ = state.inference.session().logits(text, [p1.id])
    ref = _peft_logits(folder, planted_dir, ids)
    assert torch.allclose(ref.softmax(-1), patched.softmax(-1), atol=1e-5)
    assert not torch.allclose(ref.softmax(-1), only_one.softmax(-1), atol=1e-4)


def test_train_missing_layers_then_search(client, state, planted_sae):
    body = {**BODY, "layers": [1, 2], "train_missing": True, "train_tokens": 4096, "train_d_sae": 64,
            "train_k": 4, "max_evaluations": 8, "max_features": 4}
    r = client.post("/api/behaviours/remove", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    rec = state.behaviours.wait(job_id, 600)
    assert rec.status == "done", rec.error
    job = client.get(f"/api/behaviours/{job_id}").json()
    assert job["missing_layers"] == [2] and job["training_run_id"]
    run = state.training.get(job["training_run_id"])
    assert run.status == "done" and run.config["hook_names"] == ["blocks.2.hook_resid_post"]
    assert run.config["total_tokens"] == 4096 and run.config["d_sae"] == 64
    assert set(job["sae_ids"]) == {planted_sae, *run.sae_ids}
    layers = {r["layer"] for r in rec.state["rankings"]}
    assert layers == {1, 2}
    cands = client.get(f"/api/behaviours/{job_id}/candidates").json()
    assert {c["edits"][0]["layer"] for c in cands} == {1, 2}
    # the trained SAE is analysed once the job is done, not beside the search
    assert run.config["analyze"] is False and rec.state["analysis_started"] is True
    (trained,) = run.sae_ids
    assert state.features.status(trained)["status"] in ("running", "done")


def test_report_labels_are_looked_up_when_read(client, state, planted_sae):
    """Chosen features of an SAE analysed after the job show their labels in the report from then on."""
    rec = state.behaviours.wait(client.post("/api/behaviours/remove", json=BODY).json()["job_id"], 300)
    assert rec.status == "done", rec.error
    stored = rec.result["edits"][0]
    assert stored["sae_id"] == planted_sae and all(f["label"] is None for f in stored["features"])
    state.features.analyze(planted_sae, n_tokens=4096)
    want = state.features.queries.labels(planted_sae, [f["index"] for f in stored["features"]])
    assert want
    got = client.get(f"/api/behaviours/{rec.id}").json()["report"]["edits"][0]["features"]
    for f in got:
        lab = want.get(f["index"])
        assert f["label"] == (lab.label if lab else None)
        assert f["top_tokens"] == (list(lab.top_tokens)[:10] if lab else [])
    assert any(f["top_tokens"] for f in got)
    assert state.behaviours.get(rec.id).result["edits"][0]["features"] == stored["features"]  # stored as it was


def test_behaviour_event_has_a_wire_twin():
    for ev in EVENT_TYPES:
        wire = EVENT_MESSAGES[ev.type]
        assert {f.name for f in fields(ev)} | {"type"} == set(wire.model_fields), ev.type
    ev = BehaviourCandidate(job_id="bjob_x", index=0, stage="screen",
                            edits=[{"sae_id": "s", "hook_name": "blocks.1.hook_resid_post", "layer": 1,
                                    "mode": "ablate", "strength": 1.0, "features": [5]}],
                            search={"n_positive": 1, "n_negative": 1, "target_before": 0.9, "target_after": 0.1,
                                    "target_ratio": 0.11, "kl_mean": 0.0, "kl_max": 0.0, "max_target_change": 0.0},
                            held_out={"n_positive": 1, "n_negative": 1, "target_before": 0.9, "target_after": 0.1,
                                      "target_ratio": 0.11, "kl_mean": 0.0, "kl_max": 0.0,
                                      "max_target_change": 0.0},
                            feasible=True, objective=0.11, budget_use=0.0, best_index=0)
    msg = event_message(ev)
    assert msg.type == "behaviour_candidate" and msg.edits[0].features == [5]
    with pytest.raises(ValidationError):
        event_message(BehaviourCandidate(job_id="j", index=0, stage="s", edits=[{"mode": "steer"}], search={},
                                         held_out={}, feasible=True, objective=0.0, budget_use=0.0))


def test_progress_over_the_websocket(client, state, planted_sae):
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
        r = client.post("/api/behaviours/remove", json={**BODY, "max_evaluations": 4})
        job_id = r.json()["job_id"]
        cands, jobs = [], []
        while not jobs or jobs[-1]["status"] == "running":
            msg = ws.receive_json()
            if msg.get("job_id") != job_id:
                continue
            (cands if msg["type"] == "behaviour_candidate" else jobs).append(msg)
    assert jobs[-1]["type"] == "job" and jobs[-1]["kind"] == "behaviour_removal" and jobs[-1]["status"] == "done"
    assert [c["index"] for c in cands] == [0, 1, 2, 3] and jobs[-1]["done"] == 4 and jobs[-1]["total"] == 4
    assert {"ranking", "searching", "finalising"} <= {j["detail"] for j in jobs}
    stored = client.get(f"/api/behaviours/{job_id}/candidates").json()
    for c, s in zip(cands, stored):
        assert c["edits"] == s["edits"] and c["held_out"] == s["held_out"] and c["feasible"] == s["feasible"]
