"""`microscope backup` / `microscope restore`: consistent database copy, artifacts, refusal rules."""
from __future__ import annotations

import io
import sqlite3
import tarfile
from pathlib import Path

import pytest

from interpretability_workbench.backup import create_backup, restore_backup, workspace_is_empty
from interpretability_workbench.cli import main as cli_main
from interpretability_workbench.errors import Conflict, Invalid
from interpretability_workbench.settings import Settings
from interpretability_workbench.store.db import Database


def _workspace(home: Path) -> Settings:
    s = Settings(home=home)
    s.ensure_dirs()
    db = Database(s.db_path)  # left open: the backup must be consistent while the server writes
    art = s.artifacts_dir / "saes" / "sae_1"
    art.mkdir(parents=True)
    (art / "cfg.json").write_text('{"d_in": 4}')
    (art / "sae_weights.safetensors").write_bytes(b"\x00" * 100)
    (s.corpora_dir / "corpus_1.txt").write_text("some text")
    (s.model_cache_dir / "weights.safetensors").write_bytes(b"\x01" * 10)
    db.insert("corpora", {"id": "corpus_1", "name": "c.txt", "path": str(s.corpora_dir / "corpus_1.txt"),
                          "created_at": 1.0})
    db.insert("saes", {"id": "sae_1", "name": "n", "model_id": "m", "hook_name": "blocks.0.hook_resid_post",
                       "layer": 0, "d_in": 4, "d_sae": 8, "architecture": "topk", "path": str(art),
                       "source": "trained", "created_at": 1.0})
    s._db = db  # type: ignore[attr-defined]  # keep it open for the test's duration
    return s


def test_backup_and_restore_round_trip_elsewhere(tmp_path: Path) -> None:
    src = _workspace(tmp_path / "src")
    res = create_backup(src, tmp_path / "b.tar.gz")
    assert res.path.is_file() and res.n_files == 4  # db, cfg, weights, corpus; no model cache
    names = tarfile.open(res.path).getnames()
    assert "models/weights.safetensors" not in names and "workbench.sqlite3" in names

    dst = Settings(home=tmp_path / "dst")
    out = restore_backup(dst, res.path)
    assert out.n_files == 4 and out.rewritten_paths == 2
    assert (dst.artifacts_dir / "saes" / "sae_1" / "sae_weights.safetensors").read_bytes() == b"\x00" * 100
    db = Database(dst.db_path)
    row = db.get("saes", id="sae_1")
    assert row["path"] == str(dst.artifacts_dir / "saes" / "sae_1") and Path(row["path"]).is_dir()
    assert db.get("corpora", id="corpus_1")["path"].startswith(str(dst.home))
    db.close()

    with_models = create_backup(src, tmp_path / "m.tar.gz", include_models=True)
    assert "models/weights.safetensors" in tarfile.open(with_models.path).getnames()


def test_restore_refuses_non_empty_without_force(tmp_path: Path) -> None:
    src = _workspace(tmp_path / "src")
    archive = create_backup(src, tmp_path / "b.tar.gz").path
    other = _workspace(tmp_path / "other")
    (other.corpora_dir / "mine.txt").write_text("keep me?")
    assert not workspace_is_empty(other.home)
    with pytest.raises(Conflict, match="--force"):
        restore_backup(other, archive)
    assert (other.corpora_dir / "mine.txt").exists()
    other._db.close()  # type: ignore[attr-defined]
    restore_backup(other, archive, force=True)
    assert not (other.corpora_dir / "mine.txt").exists()
    assert (other.corpora_dir / "corpus_1.txt").read_text() == "some text"


def _evil_archive(path: Path, name: str, *, link: bool = False) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        man = b'{"format": 1}'
        ti = tarfile.TarInfo("iwb-backup.json")
        ti.size = len(man)
        tar.addfile(ti, io.BytesIO(man))
        ti = tarfile.TarInfo(name)
        if link:
            ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(ti)
        else:
            ti.size = 4
            tar.addfile(ti, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize("name,link", [("../evil.txt", False), ("artifacts/../../evil.txt", False),
                                       ("/tmp/evil_abs_iwb.txt", False), ("corpora/link", True),
                                       ("unexpected.txt", False)])
def test_restore_rejects_escaping_members(tmp_path: Path, name: str, link: bool) -> None:
    archive = _evil_archive(tmp_path / "evil.tar.gz", name, link=link)
    home = tmp_path / "ws" / "home"
    with pytest.raises(Invalid):
        restore_backup(Settings(home=home), archive)
    assert not (tmp_path / "ws" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/evil_abs_iwb.txt").exists()
    assert not any(home.rglob("*evil*")) and not any(p.name.startswith(".restore") for p in home.iterdir())


def test_cli_backup_restore(tmp_path: Path, capsys) -> None:
    src = _workspace(tmp_path / "src")
    out = tmp_path / "cli.tar.gz"
    assert cli_main(["backup", "--out", str(out), "--home", str(src.home)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert cli_main(["restore", str(out), "--home", str(src.home)]) == 2  # non-empty, no --force
    assert "--force" in capsys.readouterr().err
    assert cli_main(["restore", str(out), "--home", str(tmp_path / "fresh")]) == 0
    con = sqlite3.connect(tmp_path / "fresh" / "workbench.sqlite3")
    assert con.execute("SELECT count(*) FROM saes").fetchone()[0] == 1
    con.close()
