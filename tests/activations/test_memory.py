"""Memory bounds of streaming: a ~200 MB JSONL corpus is read with the process's resident memory growing
by far less than the corpus (a whole-file read would grow it by more than the file size). These are
memory bounds measured from /proc/self/status, not timings."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from interpretability_workbench.activations.corpus import load_texts
from interpretability_workbench.activations.sources import CountProgress, count_tokens, open_source

pytestmark = pytest.mark.slow  # ~30 s on a quiet machine: generates and reads a 200 MB corpus

CORPUS_BYTES = 200 << 20
LIMIT = 100 << 20  # allowed RSS growth, well under the corpus size


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")  # pragma: no cover - Linux only


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """(path, documents, characters of text) of a generated ~200 MB JSONL file, written line by line."""
    base = load_texts(None)
    p = tmp_path_factory.mktemp("big") / "big.jsonl"
    size = n = chars = 0
    with open(p, "w", encoding="utf-8") as f:
        while size < CORPUS_BYTES:
            text = base[n % len(base)]
            line = json.dumps({"id": n, "text": text}) + "\n"
            f.write(line)
            size, n, chars = size + len(line.encode()), n + 1, chars + len(text)
    yield p, n, chars
    p.unlink()


def test_reading_200mb_keeps_memory_flat(big_jsonl) -> None:
    path, n_docs, n_chars = big_jsonl
    assert path.stat().st_size >= CORPUS_BYTES
    before = peak = rss()
    docs = chars = 0
    for _pos, text in open_source(path).iter_documents():
        docs += 1
        chars += len(text)
        if docs % 1000 == 0:
            peak = max(peak, rss())
    peak = max(peak, rss())
    assert (docs, chars) == (n_docs, n_chars)  # everything was read
    assert peak - before < LIMIT, f"RSS grew by {(peak - before) >> 20} MiB"


def test_counting_and_compressed_reading_stream(big_jsonl, tmp_path: Path, tok) -> None:
    """A count (and a zstandard stream) of the 200 MB corpus, stopped early (4 MB counted, 32 MB
    decompressed): a reader that loaded or decompressed the whole file first would already have grown by
    the corpus size."""
    import zstandard

    path, _, _ = big_jsonl
    zst = tmp_path / "big.jsonl.zst"
    with open(path, "rb") as src, open(zst, "wb") as dst:
        zstandard.ZstdCompressor(level=1).copy_stream(src, dst)

    before = rss()
    peaks: list[int] = []
    stop = threading.Event()

    def progress(p: CountProgress) -> None:
        peaks.append(rss())
        if p.bytes_done > 4 << 20:
            stop.set()

    got = count_tokens(open_source(path), tok, progress=progress, cancel=stop, batch_docs=64, min_interval_s=0.0)
    assert not got.complete and got.tokens > 0 and len(peaks) > 10
    assert max(peaks) - before < LIMIT, f"RSS grew by {(max(peaks) - before) >> 20} MiB while counting"

    before = rss()
    peak = before
    for pos, _text in open_source(zst).iter_documents():
        peak = max(peak, rss()) if pos.row % 500 == 0 else peak
        if pos.byte > 32 << 20:
            break
    assert peak - before < LIMIT, f"RSS grew by {(peak - before) >> 20} MiB reading zstandard"


def test_uploading_200mb_through_the_server_keeps_memory_flat(big_jsonl, settings, tmp_path: Path) -> None:
    """The same corpus uploaded through a real server (uvicorn, HTTP, in this process) as a streamed raw body:
    the server writes it to disk as it arrives, so the process grows by far less than the file."""
    import socket
    import time

    import httpx
    import uvicorn

    from interpretability_workbench.server.app import create_app
    from interpretability_workbench.state import WorkbenchState

    path, _, _ = big_jsonl
    st = WorkbenchState(settings.model_copy(update={"max_body_bytes": 1 << 20}))  # no model: no count afterwards
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(st.settings, st, load_model=False), host="127.0.0.1",
                                           port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.02)
    peaks: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peaks.append(rss())

    def body():
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
    try:
        before = rss()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        r = httpx.post(f"http://127.0.0.1:{port}/api/corpora", params={"filename": "big.jsonl"}, content=body(),
                       headers={"content-type": "application/octet-stream"}, timeout=600)
        done.set()
        sampler.join()
        assert r.status_code == 201, r.text
        assert r.json()["size_bytes"] == path.stat().st_size
        assert len(peaks) > 5 and max(peaks) - before < LIMIT, f"RSS grew by {(max(peaks) - before) >> 20} MiB"
    finally:
        server.should_exit = True
        t.join(30)
        st.shutdown()
        st.close()
