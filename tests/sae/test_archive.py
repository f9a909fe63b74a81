"""SAELens interop through the REST zip import/export: exports load in sae_lens and encode identically;
SAELens-saved SAEs (v6 and pre-v6 cfg) import and encode identically; unsafe zips are rejected and nothing
is unpickled."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

HOOK = "blocks.1.hook_resid_post"


def _zip_dir(folder: Path, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, arcname=prefix + f.name)
    return buf.getvalue()


def _upload(client, data: bytes, name="sae.zip"):
    return client.post("/api/saes/import", files={"file": (name, data, "application/zip")})


def _trained_like_sae(arch="topk") -> SparseAutoencoder:
    cfg = SAEConfig(d_in=64, d_sae=128, architecture=arch, k=8, hook_name=HOOK, model_id="tiny",
                    normalize_activations="expected_average_only_in", norm_scale=3.7)
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.5)
        sae.threshold.fill_(0.05)
    return sae


@pytest.mark.parametrize("arch", ["topk", "standard", "batchtopk"])
def test_export_loads_in_saelens_and_encodes_identically(client, state, tmp_path, arch):
    from sae_lens import SAE

    sae = _trained_like_sae(arch)
    sae_id = state.saes.register(sae, source="trained")
    r = client.get(f"/api/saes/{sae_id}/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    out = tmp_path / "exported"
    out.mkdir()
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(out)
    theirs = SAE.load_from_disk(str(out), device="cpu")
    x = torch.randn(32, 64) * 4
    with torch.no_grad():
        ours_f, their_f = sae.encode(x), theirs.encode(x)
        torch.testing.assert_close(their_f, ours_f, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(theirs.decode(their_f), sae.decode(ours_f), rtol=1e-4, atol=1e-4)


def test_saelens_saved_sae_imports_and_encodes_identically(client, state, tmp_path):
    from sae_lens import TopKSAE, TopKSAEConfig

    cfg = TopKSAEConfig(d_in=64, d_sae=96, k=6)
    cfg.metadata.hook_name = HOOK
    cfg.metadata.model_name = "tiny"
    theirs = TopKSAE(cfg)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0, 0.2)
    folder = tmp_path / "saelens"
    theirs.save_model(str(folder))
    r = _upload(client, _zip_dir(folder, prefix="my_sae/"))
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["hook_name"] == HOOK and info["d_sae"] == 96 and info["architecture"] == "topk"
    ours = state.saes.get(info["id"]).sae
    x = torch.randn(16, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), theirs.encode(x), rtol=1e-5, atol=1e-5)


def test_pre_v6_cfg_imports(client, state, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    w = {"W_enc": torch.randn(64, 32), "W_dec": torch.randn(32, 64), "b_enc": torch.randn(32), "b_dec": torch.randn(64)}
    save_file(w, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({
        "d_in": 64, "d_sae": 32, "hook_name": HOOK, "model_name": "tiny", "context_size": 64,
        "dataset_path": "x", "apply_b_dec_to_input": True, "architecture": "standard", "dtype": "float32"}))
    r = _upload(client, _zip_dir(folder))
    assert r.status_code == 201, r.text
    sae = state.saes.get(r.json()["id"]).sae
    x = torch.randn(4, 64)
    expect = ((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]).relu()
    torch.testing.assert_close(sae.encode(x), expect)


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(_Boom.marker),))


def test_import_rejects_traversal_and_disguised_pickle(client, state, tmp_path):
    sae = _trained_like_sae()
    good = tmp_path / "good"
    from interpretability_workbench.sae.io import save_sae

    save_sae(sae, good)
    for bad_name in ("../cfg.json", "/etc/cfg.json", "a/b/c/cfg.json", "evil.py"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.write(good / "sae_weights.safetensors", "sae_weights.safetensors")
            zf.writestr(bad_name, (good / "cfg.json").read_text())
        r = _upload(client, buf.getvalue())
        assert r.status_code == 422, (bad_name, r.text)
    # a pickle renamed to sae_weights.safetensors: rejected, never unpickled
    _Boom.marker = str(tmp_path / "pwned")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cfg.json", (good / "cfg.json").read_text())
        zf.writestr("sae_weights.safetensors", pickle.dumps({"W_enc": _Boom()}))
    r = _upload(client, buf.getvalue())
    assert r.status_code == 422 and "safetensors" in r.json()["detail"]
    assert not Path(_Boom.marker).exists()
    assert _upload(client, b"not a zip").status_code == 422
    assert client.get("/api/saes").json() == []
    assert client.get("/api/saes/sae_missing/export").status_code == 404
