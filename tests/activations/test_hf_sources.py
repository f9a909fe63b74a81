"""``datasets`` sources without network: a ``save_to_disk`` folder through ``load_from_disk``, and a hub
dataset id resolved in a hub cache laid out by the test (refs, snapshots, blobs) and streamed by
``datasets.load_dataset(..., streaming=True)`` with offline mode on."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from interpretability_workbench.activations.source_types import START
from interpretability_workbench.activations.sources import Position, SourceError, SourceSpec, open_source

from .conftest import write_jsonl, write_parquet

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the hub fails at once instead of waiting on the network."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def hub_cache(root: Path, repo: str, files: dict[str, Path], *, ref: str = "main") -> Path:
    """Lay out ``<root>/datasets--owner--name`` as huggingface_hub does: content in ``blobs/<sha256>``,
    ``snapshots/<commit>/<path>`` symlinks to the blobs, ``refs/<ref>`` naming the commit."""
    repo_dir = root / ("datasets--" + repo.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / ref).write_text(REV)
    snap = repo_dir / "snapshots" / REV
    for rel, src in files.items():
        data = src.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snap


def read_all(src, start: Position = START) -> list[tuple[Position, str]]:
    return list(src.iter_documents(start))


def check_resume(spec: SourceSpec, expected: list[str], ks: tuple[int, ...]) -> None:
    full = read_all(open_source(spec))
    assert [t for _, t in full] == expected
    for k in ks:
        stored = Position.from_dict(json.loads(json.dumps(full[k - 1][0].to_dict())))
        assert read_all(open_source(spec), stored) == full[k:], k


def test_save_to_disk_dataset(tmp_path: Path, docs: list[str]) -> None:
    import datasets

    texts = docs[:20] + [""] + docs[20:40]  # an empty row is skipped but still counted in positions
    ds = datasets.Dataset.from_dict({"id": list(range(len(texts))), "content": texts})
    ds.save_to_disk(str(tmp_path / "ds"), max_shard_size="20KB")
    spec = SourceSpec(str(tmp_path / "ds"), text_field="content")
    src = open_source(spec)
    info = src.describe()
    assert info.format == "datasets" and info.n_docs == len(texts) and len(info.shards) > 1
    check_resume(spec, docs[:40], (1, 19, 20, 21, 39, 40))
    assert read_all(src)[20][0] == Position(0, 22, 0)  # row 21 (empty) was passed over
    with pytest.raises(SourceError, match=r"no column 'text' \(columns: id, content\)"):
        open_source(str(tmp_path / "ds"))


def test_save_to_disk_dataset_dict_picks_the_split(tmp_path: Path, docs: list[str]) -> None:
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": docs[:10]}),
                               "test": datasets.Dataset.from_dict({"text": docs[10:13]})})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert [t for _, t in read_all(open_source(str(tmp_path / "dd")))] == docs[:10]
    assert [t for _, t in read_all(open_source(SourceSpec(str(tmp_path / "dd"), split="test")))] == docs[10:13]
    with pytest.raises(SourceError, match=r"no split 'validation' \(splits: train, test\); set split"):
        open_source(SourceSpec(str(tmp_path / "dd"), split="validation"))


def test_hub_dataset_from_the_local_cache_parquet(tmp_path: Path, docs: list[str]) -> None:
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    files = {f"data/train-0000{i}-of-00003.parquet": write_parquet(src_dir / f"t{i}.parquet", docs[i * 15:(i + 1) * 15],
                                                                      row_group_size=4) for i in range(3)}
    files["data/validation-00000-of-00001.parquet"] = write_parquet(src_dir / "v.parquet", docs[45:50])
    cache = tmp_path / "hub"
    hub_cache(cache, "acme/tiny-corpus", files)
    spec = SourceSpec("acme/tiny-corpus", cache_dir=str(cache))
    src = open_source(spec)
    info = src.describe()
    assert info.format == "hub" and info.location == "acme/tiny-corpus" and len(info.shards) == 4
    assert info.size_bytes == sum(p.stat().st_size for p in files.values())
    check_resume(spec, docs[:45], (1, 14, 15, 16, 30, 44, 45))
    assert read_all(src)[15][0] == Position(1, 1, 0)  # shard 1, one row consumed
    val = SourceSpec("acme/tiny-corpus", split="validation", cache_dir=str(cache))
    assert [t for _, t in read_all(open_source(val))] == docs[45:50]


def test_hub_dataset_jsonl_with_a_card_config_and_text_field(tmp_path: Path, docs: list[str]) -> None:
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    card = src_dir / "README.md"
    card.write_text("---\nconfigs:\n- config_name: en\n  data_files:\n  - split: train\n    path: en/*.jsonl\n"
                    "- config_name: fr\n  data_files:\n  - split: train\n    path: fr/*.jsonl\n---\n# tiny\n")
    files = {"README.md": card,
             "en/part-0.jsonl": write_jsonl(src_dir / "e0.jsonl", docs[:8], field="body"),
             "en/part-1.jsonl": write_jsonl(src_dir / "e1.jsonl", docs[8:12], field="body"),
             "fr/part-0.jsonl": write_jsonl(src_dir / "f0.jsonl", ["bonjour", "le monde"], field="body")}
    cache = tmp_path / "hub"
    hub_cache(cache, "acme/multi", files)
    en = SourceSpec("acme/multi", config="en", text_field="body", kind="hub", cache_dir=str(cache))
    check_resume(en, docs[:12], (1, 7, 8, 9, 12))
    fr = SourceSpec("acme/multi", config="fr", text_field="body", cache_dir=str(cache))
    assert [t for _, t in read_all(open_source(fr))] == ["bonjour", "le monde"]
    with pytest.raises(SourceError, match="no column 'text'.*set text_field"):
        open_source(SourceSpec("acme/multi", config="en", cache_dir=str(cache)))


def test_hub_dataset_not_cached_says_how_to_get_it(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    cache.mkdir()
    with pytest.raises(SourceError, match="'acme/absent' is not in the local Hugging Face cache .*nothing is "
                                          "downloaded"):
        open_source(SourceSpec("acme/absent", cache_dir=str(cache)))
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    hub_cache(cache, "acme/tiny", {"data/train.parquet": write_parquet(src_dir / "t.parquet", ["a", "b"])})
    with pytest.raises(SourceError, match="revision 'v2' is not in the local Hugging Face cache"):
        open_source(SourceSpec("acme/tiny", revision="v2", cache_dir=str(cache)))
    with pytest.raises(SourceError, match="set split"):
        open_source(SourceSpec("acme/tiny", split="validation", cache_dir=str(cache)))
