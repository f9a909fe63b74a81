"""Pretrained releases through the REST API and the CLI, offline: SAEs saved by the real sae_lens sit in a
Hugging Face cache layout, a registry file (IWB_SAE_REGISTRY) names the release, and the imported SAEs are
used everywhere an SAE is — analysis, a patch whose PEFT export peft reloads (≤ 1e-4), contrast, provenance —
and encode like sae_lens's own ``SAE.from_pretrained`` (fp32, atol 1e-4)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.model.tokenize import encode_prompt

REPO = "tester/tiny-llama-saes"
RELEASE = "tiny-res-jumprelu"
IDS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
PROMPT = "Return the number of items in the container"


@pytest.fixture
def release(hub, tmp_path, make_sae, in_saelens_registry) -> Path:
    """Two JumpReLU SAEs (layers 0 and 1 of the tiny Llama) saved by sae_lens, cached, named by a registry."""
    folders = {}
    for layer, sid in enumerate(IDS):
        folders[f"layer_{layer}"] = tmp_path / f"saved-{layer}"
        make_sae("jumprelu", folders[f"layer_{layer}"], hook=sid)
    hub.publish(REPO, folders)
    entry = {"repo_id": REPO, "model": "tiny-llama", "conversion_func": None,
             "saes": [{"id": sid, "path": f"layer_{n}", "neuronpedia": f"tiny/{n}-res"} for n, sid in enumerate(IDS)]}
    in_saelens_registry(RELEASE, entry)
    other = {**entry, "model": "google/gemma-2-2b", "saes": entry["saes"][:1]}
    return hub.registry({RELEASE: entry, "gemma-only": other})


@pytest.fixture
def pstate(tmp_path, tiny_llama_dir, release):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(Settings(home=tmp_path / "home", model=str(tiny_llama_dir), device="cpu", dtype="float32",
                                 sae_registry=[str(release)]))
    st.load_model(st.settings.model)
    yield st
    st.shutdown()
    st.close()


@pytest.fixture
def pclient(pstate):
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app

    with TestClient(create_app(pstate.settings, pstate, load_model=False)) as c:
        yield c


def test_search_lists_the_loaded_models_releases(pclient, pstate):
    body = pclient.get("/api/saes/pretrained").json()
    assert body["model_id"] == pstate.lm.model_id and body["total"] == 1
    (rel,) = body["releases"]
    assert rel["release"] == RELEASE and rel["supported"] and [s["sae_id"] for s in rel["saes"]] == IDS
    assert all(s["cached"] and s["d_sae"] == 128 and s["architecture"] == "jumprelu" for s in rel["saes"])
    only = pclient.get("/api/saes/pretrained", params={"q": "jumprelu 1-res"}).json()["releases"]
    assert [s["sae_id"] for s in only[0]["saes"]] == [IDS[1]]
    assert pclient.get("/api/saes/pretrained", params={"q": "nothing-like-this"}).json()["total"] == 0
    everyone = pclient.get("/api/saes/pretrained", params={"all_models": True, "q": "gemma-only"}).json()
    assert everyone["model_id"] is None and [r["release"] for r in everyone["releases"]] == ["gemma-only"]


def test_imported_jumprelu_encodes_like_saelens_and_works_everywhere(pclient, pstate, tiny_llama_dir, tmp_path):
    from peft import PeftModel
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM

    r = pclient.post("/api/saes/import-pretrained", json={"release": RELEASE, "all": True})
    assert r.status_code == 201, r.text
    rows = r.json()
    assert [x["pretrained_id"] for x in rows] == IDS and all(x["release"] == RELEASE for x in rows)
    assert all(x["source"] == "pretrained" and x["model_id"] == pstate.lm.model_id for x in rows)
    assert [x["name"] for x in rows] == [f"{RELEASE}/{i}" for i in IDS]
    sid0, sid1 = (x["id"] for x in rows)
    cfg = pclient.get(f"/api/saes/{sid1}").json()["config"]
    assert cfg["architecture"] == "jumprelu" and cfg["extra"]["pretrained"]["model"] == "tiny-llama"

    # encodes the model's activations like sae_lens (fp32)
    lm = pstate.lm
    ids = encode_prompt(lm, PROMPT + " and return it")
    acts = run_with_cache(lm.model, ids, [IDS[1]]).cache[IDS[1]][0, 1:].float()
    theirs = SAE.from_pretrained(RELEASE, IDS[1])
    with torch.no_grad():
        ours_f, theirs_f = pstate.saes.get(sid1).sae.encode(acts), theirs.encode(acts)
    torch.testing.assert_close(ours_f, theirs_f, rtol=0, atol=1e-4)
    assert 0 < int((theirs_f > 0).sum()) < theirs_f.numel()
    feature = int(theirs_f.sum(0).argmax())

    # analysed
    assert pclient.post(f"/api/saes/{sid1}/analysis", json={"n_tokens": 630}).status_code == 202
    pstate.features.wait(sid1)
    assert pclient.get(f"/api/saes/{sid1}/analysis").json()["status"] == "done"
    assert pclient.get(f"/api/saes/{sid1}/features/{feature}").status_code == 200

    # patched, and the PEFT export reloads in peft with the same logits
    p = pclient.post("/api/patches", json={"sae_id": sid1, "features": [feature], "mode": "ablate",
                                            "enabled": False}).json()
    ex = pclient.get(f"/api/patches/{p['id']}/export", params={"format": "peft"})
    with zipfile.ZipFile(io.BytesIO(ex.content)) as zf:
        zf.extractall(tmp_path / "peft")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / "peft" / p["id"])).eval()
    orig, ours, _, _ = pstate.inference.session().logits(PROMPT, [p["id"]])
    with torch.no_grad():
        theirs_logits = peft_model(input_ids=encode_prompt(lm, PROMPT)).logits[0, -1]
    assert float((ours - theirs_logits).abs().max()) <= 1e-4
    assert float((ours - orig).abs().max()) > 1e-4

    # contrast and provenance (the layer-0 SAE of the same release is the upstream one)
    con = pclient.post(f"/api/saes/{sid1}/contrast", json={"positive": [PROMPT, "return x"],
                                                           "negative": ["The module", "A class"]})
    assert con.status_code == 200 and con.json()["features"]
    g = pclient.get("/api/provenance", params={"sae_id": sid1, "feature": feature, "depth": 1, "prompt": PROMPT})
    assert g.status_code == 200, g.text
    body = g.json()
    assert {n["sae_id"] for n in body["nodes"] if n["kind"] == "feature"} <= {sid0}
    assert body["edges"] and body["validation"] is not None


def test_import_one_or_several_and_the_errors(pclient, pstate, hub):
    one = pclient.post("/api/saes/import-pretrained", json={"release": RELEASE, "sae_id": IDS[1]})
    assert one.status_code == 201 and [x["pretrained_id"] for x in one.json()] == [IDS[1]]
    two = pclient.post("/api/saes/import-pretrained", json={"release": RELEASE, "sae_ids": [IDS[1], IDS[0]]})
    assert [x["pretrained_id"] for x in two.json()] == [IDS[1], IDS[0]]
    assert len([s for s in pclient.get("/api/saes").json() if s["source"] == "pretrained"]) == 3
    for body in ({"release": RELEASE}, {"release": RELEASE, "sae_id": IDS[0], "all": True},
                 {"release": RELEASE, "sae_id": IDS[0], "sae_ids": [IDS[1]]}):
        assert pclient.post("/api/saes/import-pretrained", json=body).status_code == 422, body
    r = pclient.post("/api/saes/import-pretrained", json={"release": "tiny-res-jumprelux", "all": True})
    assert r.status_code == 404 and RELEASE in r.json()["detail"]  # did you mean ...
    r = pclient.post("/api/saes/import-pretrained", json={"release": RELEASE, "sae_id": "blocks.9.hook_resid_post"})
    assert r.status_code == 404
    r = pclient.post("/api/saes/import-pretrained", json={"release": "gemma-only", "all": True})
    assert r.status_code == 422 and "trained on 'google/gemma-2-2b'" in r.json()["detail"]
    # offline and not cached: 404 naming the files to fetch, nothing registered
    import shutil

    shutil.rmtree(hub.repo_dir(REPO))
    before = len(pclient.get("/api/saes").json())
    r = pclient.post("/api/saes/import-pretrained", json={"release": RELEASE, "all": True})
    assert r.status_code == 404 and "hf download" in r.json()["detail"] and "layer_1/cfg.json" in r.json()["detail"]
    assert len(pclient.get("/api/saes").json()) == before


def test_cli_imports_a_release(release, tiny_llama_dir, tmp_path, monkeypatch, capsys):
    from interpretability_workbench.cli import main
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.store.db import Database
    from interpretability_workbench.store.saes import SAERepo

    home = tmp_path / "clihome"
    monkeypatch.setenv("IWB_HOME", str(home))
    monkeypatch.setenv("IWB_SAE_REGISTRY", str(release))
    args = ["import", "--release", RELEASE, "--model", str(tiny_llama_dir), "--device", "cpu", "--dtype", "float32"]
    assert main([*args, "--sae-id", IDS[1]]) == 0
    assert f"{RELEASE}/{IDS[1]} -> {IDS[1]} d_sae 128 (jumprelu)" in capsys.readouterr().out
    assert main([*args, "--all"]) == 0
    assert capsys.readouterr().out.count("imported sae_") == 2
    assert main([*args]) == 2  # neither --sae-id nor --all
    assert "--sae-id ID" in capsys.readouterr().err
    db = Database(Settings(home=home).db_path)
    try:
        rows = SAERepo(db).list()
    finally:
        db.close()
    assert sorted(r.hook_name for r in rows) == sorted([IDS[1], *IDS]) and {r.source for r in rows} == {"pretrained"}
    assert {r.model_id for r in rows} == {str(Path(tiny_llama_dir).resolve())}
