"""Hostile uploads: a pickle disguised as safetensors never executes; traversal names in corpus uploads and
zip members write nothing outside the workspace."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from .conftest import require_route

CFG = {"d_in": 64, "d_sae": 128, "architecture": "topk", "k": 8, "dtype": "float32", "device": "cpu",
       "apply_b_dec_to_input": True, "normalize_activations": "none",
       "metadata": {"hook_name": "blocks.1.hook_resid_post", "model_name": "tiny"}}


class _Boom:
    """Unpickling this creates the marker file (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def sandbox(client, tmp_path):
    """(client, workspace home, files outside the workspace before the test)."""
    home = client.app.state.workbench.settings.home
    outside = {p for p in _files(tmp_path) if home not in p.parents}
    return client, home, outside


def _nothing_new_outside(tmp_path: Path, home: Path, before: set[Path]) -> None:
    now = {p for p in _files(tmp_path) if home not in p.parents}
    assert now == before, f"written outside the workspace: {sorted(now - before)}"


def test_pickle_disguised_as_weights_never_executes(sandbox, tmp_path) -> None:
    client, home, before = sandbox
    require_route(client.app, "POST", "/api/saes/import")
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Boom(marker))
    cfg = json.dumps(CFG).encode()
    for members in ({"cfg.json": cfg, "sae_weights.safetensors": payload},
                    {"cfg.json": cfg, "sae_weights.safetensors": payload, "sparsity.safetensors": payload},
                    {"cfg.json": cfg, "sae_weights.pt": payload},
                    {"cfg.json": cfg, "pytorch_model.bin": payload}):
        r = client.post("/api/saes/import", files={"file": ("evil.zip", _zip(members), "application/zip")})
        assert 400 <= r.status_code < 500, r.text
        assert "detail" in r.json()
        assert not marker.exists(), "a pickle was unpickled"
    # a raw pickle (not a zip) too
    r = client.post("/api/saes/import", files={"file": ("evil.zip", payload, "application/zip")})
    assert 400 <= r.status_code < 500 and not marker.exists()
    _nothing_new_outside(tmp_path, home, before - {marker})


@pytest.mark.parametrize("member", ["../evil", "../../evil.safetensors", "/tmp/iwb_abs_evil", "a/../../evil"])
def test_zip_member_traversal_rejected(sandbox, tmp_path, member: str) -> None:
    client, home, before = sandbox
    require_route(client.app, "POST", "/api/saes/import")
    data = _zip({"cfg.json": json.dumps(CFG).encode(), member: b"x"})
    r = client.post("/api/saes/import", files={"file": ("t.zip", data, "application/zip")})
    assert 400 <= r.status_code < 500, r.text
    assert not Path("/tmp/iwb_abs_evil").exists()
    _nothing_new_outside(tmp_path, home, before)


@pytest.mark.parametrize("name", ["../../x.txt", "..\\..\\x.txt", "/etc/iwb_x.txt", "../corpora/../../x.txt"])
def test_corpus_upload_name_cannot_escape(sandbox, tmp_path, name: str) -> None:
    client, home, before = sandbox
    r = client.post("/api/corpora", files={"file": (name, b"some text to index\n")})
    assert r.status_code in (201, 400, 422), r.text
    if r.status_code == 201:  # accepted under a generated name: only the base name is kept, as a label
        info = r.json()
        assert "/" not in info["name"]  # a label; the file itself is stored as corpora/<id><suffix>
        stored = [p for p in _files(home / "corpora")]
        assert stored and all((home / "corpora") in p.parents for p in stored)
    assert not Path("/etc/iwb_x.txt").exists()
    _nothing_new_outside(tmp_path, home, before)
