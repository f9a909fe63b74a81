"""/api/corpora end to end on the tiny model: streamed uploads (multipart and raw body) under their own cap,
an interrupted upload that leaves nothing, registration by path only under IWB_DATA_DIRS, hub datasets from
a local cache, background token counts with job events, and a count interrupted by a restart that resumes."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from interpretability_workbench.events import JobProgress
from interpretability_workbench.server.app import create_app
from interpretability_workbench.state import WorkbenchState

from .conftest import write_jsonl, write_parquet
from .test_hf_sources import _offline, hub_cache  # noqa: F401  (the offline fixture applies here too)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def make(settings, data_dir: Path) -> Iterator[Any]:
    """make(**setting overrides) -> (TestClient, state) with the tiny model loaded."""
    made: list[tuple[TestClient, WorkbenchState]] = []

    def build(**overrides: Any) -> tuple[TestClient, WorkbenchState]:
        s = settings.model_copy(update={"data_dirs": [data_dir], **overrides})
        st = WorkbenchState(s)
        st.load_model(s.model)
        c = TestClient(create_app(s, st, load_model=False), raise_server_exceptions=False)
        c.__enter__()
        made.append((c, st))
        return c, st

    yield build
    for c, st in made:
        c.__exit__(None, None, None)
        st.shutdown()
        st.close()


def expected_count(tok, texts: list[str]) -> int:
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts if t.strip())


def stored_files(st: WorkbenchState) -> list[str]:
    return sorted(p.name for p in st.settings.corpora_dir.iterdir())


def test_multipart_and_raw_uploads_stream_and_count(make, tmp_path: Path, docs: list[str], tok) -> None:
    client, st = make()
    events: list[JobProgress] = []
    st.bus.on(JobProgress, events.append)
    src = write_jsonl(tmp_path / "c.jsonl", docs)
    r = client.post("/api/corpora", files={"file": ("c.jsonl", src.read_bytes())})
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["status"] == "counting" and info["format"] == "jsonl" and info["kind"] == "upload"
    assert info["size_bytes"] == src.stat().st_size and "path" not in info
    zst = write_jsonl(tmp_path / "d.jsonl.zst", docs, field="body")
    r = client.post("/api/corpora?filename=d.jsonl.zst&text_field=body", content=zst.read_bytes(),
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "jsonl.zst" and r.json()["text_field"] == "body"
    assert st.corpora.wait_counts(120)
    want = expected_count(tok, docs)
    listed = {c["id"]: c for c in client.get("/api/corpora").json()}
    for cid in (info["id"], r.json()["id"]):
        c = listed[cid]
        assert c["status"] == "ready" and c["n_tokens"] == want and c["n_docs"] == len(docs), c
        assert c["tokenizer"] == st.model.lm.model_id and c["progress"] is None
    assert listed["default"]["n_tokens"] > 0 and listed["default"]["status"] == "ready"
    done = [e for e in events if e.status == "done"]
    assert {e.job_id for e in done} == {f"count_{info['id']}", f"count_{r.json()['id']}"}
    assert all(e.kind == "corpus_count" and e.done == e.total > 0 and str(want) in e.detail for e in done)
    assert [e.status for e in events if e.job_id == done[0].job_id][0] == "queued"
    assert len(stored_files(st)) == 2  # stored as corpora/<id><suffix>, no partials left


def test_bad_uploads_leave_nothing(make, tmp_path: Path, docs: list[str]) -> None:
    client, st = make()
    nofield = write_jsonl(tmp_path / "n.jsonl", docs, field="body")
    r = client.post("/api/corpora", files={"file": ("n.jsonl", nofield.read_bytes())})
    assert r.status_code == 422 and "has no string field 'text'" in r.json()["detail"]
    assert "set text_field" in r.json()["detail"]
    r = client.post("/api/corpora", files={"file": ("x.csv", b"a,b\n")})
    assert r.status_code == 422 and "unsupported corpus file 'x.csv'" in r.json()["detail"]
    r = client.post("/api/corpora", content=b"hello", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 422 and "?filename=" in r.json()["detail"]
    r = client.post("/api/corpora", files={"file": ("e.txt", b"  \n\n  ")})
    assert r.status_code == 422, r.text
    pq = write_parquet(tmp_path / "p.parquet", docs, field="body")
    r = client.post("/api/corpora", files={"file": ("p.parquet", pq.read_bytes())})
    assert r.status_code == 422 and "has no column 'text'" in r.json()["detail"]
    r = client.post("/api/corpora", files={"file": ("p.parquet", pq.read_bytes())}, data={"text_field": "body"})
    assert r.status_code == 201 and r.json()["n_docs"] == len(docs)  # Parquet row count known up front
    assert [c["id"] for c in client.get("/api/corpora").json()] == ["default", r.json()["id"]]
    assert stored_files(st) == [f"{r.json()['id']}.parquet"]


def test_corpus_cap_413_and_body_limit_exemption(make, tmp_path: Path, docs: list[str]) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", docs)
    size = src.stat().st_size
    client, st = make(max_body_bytes=1000, max_corpus_bytes=size + 10)
    r = client.post("/api/corpora", files={"file": ("c.jsonl", src.read_bytes())})
    assert r.status_code == 201, r.text  # over IWB_MAX_BODY_BYTES, under the corpus cap
    big = src.read_bytes() + b"\n" * 11  # one byte over the cap: refused as the bytes arrive
    r = client.post("/api/corpora?filename=b.jsonl", content=iter([big[:4096], big[4096:]]),
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 413 and "IWB_MAX_CORPUS_BYTES" in r.json()["detail"], r.text
    huge = (size + (2 << 20))  # declared length far over the cap: refused before any byte is read
    r = client.post("/api/corpora?filename=h.jsonl", content=b"x", headers={
        "content-type": "application/octet-stream", "content-length": str(huge)})
    assert r.status_code == 413 and "register a corpus" in r.json()["detail"]
    other = client.post("/api/training", content=b"x" * 2000, headers={"content-type": "application/json"})
    assert other.status_code == 413 and "IWB_MAX_BODY_BYTES" in other.json()["detail"]  # elsewhere unchanged
    assert len(st.corpora.repo.list()) == 1 and len(stored_files(st)) == 1


def test_an_interrupted_upload_leaves_no_row_and_no_file(make, tmp_path: Path, docs: list[str]) -> None:
    client, st = make()
    app = client.app
    data = write_jsonl(tmp_path / "c.jsonl", docs).read_bytes()
    boundary = "xyzBOUNDARY"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.jsonl\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    msgs = [{"type": "http.request", "body": head + data[:3000], "more_body": True},
            {"type": "http.request", "body": data[3000:6000], "more_body": True},
            {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return msgs.pop(0) if msgs else {"type": "http.disconnect"}

    async def send(m: dict) -> None:
        sent.append(m)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/corpora", "raw_path": b"/api/corpora", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "app": app,
             "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                         (b"content-length", str(len(head) + len(data) + 100).encode())]}
    asyncio.run(app(scope, receive, send))
    assert st.corpora.repo.list() == []
    assert stored_files(st) == []  # no corpus file, no .part file
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert 400 <= start["status"] < 500


def test_register_by_path_only_under_data_dirs(make, tmp_path: Path, data_dir: Path, docs: list[str], tok) -> None:
    import datasets

    client, st = make()
    shards = data_dir / "shards"
    shards.mkdir()
    write_parquet(shards / "a.parquet", docs[:20])
    write_jsonl(shards / "b.jsonl.gz", docs[20:])
    r = client.post("/api/corpora/register", json={"path": str(shards)})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "path" and r.json()["format"] == "shards" and r.json()["name"] == "shards"
    datasets.Dataset.from_dict({"content": docs}).save_to_disk(str(data_dir / "saved"))
    r2 = client.post("/api/corpora/register", json={"path": str(data_dir / "saved"), "text_field": "content"})
    assert r2.status_code == 201 and r2.json()["format"] == "datasets", r2.text
    assert st.corpora.wait_counts(120)
    want = expected_count(tok, docs)
    for cid in (r.json()["id"], r2.json()["id"]):
        got = client.get(f"/api/corpora/{cid}").json()
        assert got["status"] == "ready" and got["n_tokens"] == want, got
    assert not list(st.settings.corpora_dir.iterdir())  # registered corpora are read in place, never copied

    outside = tmp_path / "secret"
    outside.mkdir()
    write_jsonl(outside / "s.jsonl", docs[:3])
    for path, says in ((str(outside / "s.jsonl"), "add its folder to IWB_DATA_DIRS"),
                       (f"{data_dir}/../secret/s.jsonl", "outside the folders allowed"),
                       (str(data_dir / "missing.jsonl"), "does not exist"),
                       ("data/s.jsonl", "not an absolute path")):
        bad = client.post("/api/corpora/register", json={"path": path})
        assert bad.status_code == 422 and says in bad.json()["detail"], (path, bad.text)
    (data_dir / "empty").mkdir()
    (data_dir / "empty" / "notes.md").write_text("no shards here")
    bad = client.post("/api/corpora/register", json={"path": str(data_dir / "empty")})
    assert bad.status_code == 422 and "has no readable shards" in bad.json()["detail"]
    assert client.post("/api/corpora/register", json={"path": "/x", "hub": "a/b"}).status_code == 422
    assert len(st.corpora.repo.list()) == 2

    off_client, _ = make(data_dirs=[])
    off = off_client.post("/api/corpora/register", json={"path": str(shards)})
    assert off.status_code == 422 and "set IWB_DATA_DIRS" in off.json()["detail"]


def test_register_a_hub_dataset_from_the_local_cache(make, tmp_path: Path, docs: list[str], tok,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    files = {"data/train-00000.parquet": write_parquet(tmp_path / "t0.parquet", docs[:30]),
             "data/train-00001.parquet": write_parquet(tmp_path / "t1.parquet", docs[30:])}
    hub_cache(cache, "someone/tiny-corpus", files)
    client, st = make()
    r = client.post("/api/corpora/register", json={"hub": "someone/tiny-corpus"})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "hub" and r.json()["format"] == "hub" and r.json()["name"] == "someone/tiny-corpus"
    assert st.corpora.wait_counts(120)
    assert client.get(f"/api/corpora/{r.json()['id']}").json()["n_tokens"] == expected_count(tok, docs)
    missing = client.post("/api/corpora/register", json={"hub": "someone/absent"})
    assert missing.status_code == 422 and "not in the local Hugging Face cache" in missing.json()["detail"]


def test_counts_interrupted_by_a_restart_resume_and_partials_are_swept(make, tmp_path: Path, docs: list[str],
                                                                       settings, tok) -> None:
    client, st = make()
    r = client.post("/api/corpora", files={"file": ("c.jsonl", write_jsonl(tmp_path / "c.jsonl", docs).read_bytes())})
    cid = r.json()["id"]
    assert st.corpora.wait_counts(120)
    st.corpora.repo.update(cid, status="counting", n_tokens=None)  # as if the process died mid-count
    (st.settings.corpora_dir / f".x.jsonl.abc{'.part'}").write_bytes(b"half an upload")
    st.shutdown()
    st.close()
    client2, st2 = make()
    assert not any(p.name.endswith(".part") for p in st2.settings.corpora_dir.iterdir())
    assert st2.corpora.wait_counts(120)
    got = client2.get(f"/api/corpora/{cid}").json()
    assert got["status"] == "ready" and got["n_tokens"] == expected_count(tok, docs), got


def test_cli_corpus_add_register_and_list(tmp_path: Path, tiny_llama_dir: Path, data_dir: Path, docs: list[str],
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tok) -> None:
    from interpretability_workbench.cli import main

    monkeypatch.setenv("IWB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IWB_DEVICE", "cpu")
    monkeypatch.setenv("IWB_DATA_DIRS", str(data_dir))
    src = write_jsonl(tmp_path / "c.jsonl", docs)
    assert main(["corpus", "add", str(src), "--model", str(tiny_llama_dir)]) == 0
    out = capsys.readouterr().out
    want = expected_count(tok, docs)
    assert f"{want} tokens" in out and "corpus_" in out
    write_jsonl(data_dir / "r.jsonl", docs, field="body")
    assert main(["corpus", "add", "--register", str(data_dir / "r.jsonl"), "--text-field", "body", "--no-count"]) == 0
    assert main(["corpus", "add", "--register", str(tmp_path / "c.jsonl"), "--no-count"]) == 2
    assert "IWB_DATA_DIRS" in capsys.readouterr().err
    assert main(["corpus", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["path", "upload", "path"]
    assert rows[1]["n_tokens"] == want and rows[2]["text_field"] == "body" and rows[2]["n_tokens"] is None
