"""SIGKILL the real server mid-training, start it again: the run is marked interrupted, and
POST /api/training/{run_id}/resume completes it from its last checkpoint."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from interpretability_workbench.server.app import create_app
from interpretability_workbench.settings import Settings

from .conftest import api_paths, free_port, training_body

REPO = Path(__file__).resolve().parents[2]


def _poll(fn: Callable[[], Any], ok: Callable[[Any], bool], timeout: float, what: str) -> Any:
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            last = fn()
            if ok(last):
                return last
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "run.py", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkill_mid_training_then_resume(tmp_path: Path, tiny_llama_dir: Path) -> None:
    probe = create_app(Settings(home=tmp_path / "probe", model="none"), load_model=False)
    if "POST" not in api_paths(probe).get("/api/training/{run_id}/resume", set()):
        pytest.skip("training API not available")
    env = {**os.environ, "IWB_HOME": str(tmp_path / "home"), "IWB_MODEL": str(tiny_llama_dir),
           "IWB_DEVICE": "cpu", "IWB_DTYPE": "float32", "HF_HUB_OFFLINE": "1", "IWB_LOG_JSON": "true"}
    env.pop("IWB_API_KEY", None)
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    # long enough that even a quiet machine is still training when the first checkpoints land
    body = training_body(probe, total_tokens=256 * 1500, checkpoint_every=2)
    proc = _start(env, port, log)
    try:
        _poll(lambda: httpx.get(f"{base}/api/health").json(), lambda h: h["model_status"] == "ready", 120,
              "the server to load the model")
        r = httpx.post(f"{base}/api/training", json=body, timeout=30)
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"]
        run = _poll(lambda: httpx.get(f"{base}/api/training/{run_id}").json(),
                    lambda x: x["status"] == "running" and x.get("checkpoint_path") and x["step"] >= 4, 180,
                    "a checkpoint mid-training")
        assert run["status"] == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc = _start(env, port, log)
    try:
        _poll(lambda: httpx.get(f"{base}/api/health").json(), lambda h: h["model_status"] == "ready", 120,
              "the restarted server")
        after = httpx.get(f"{base}/api/training/{run_id}").json()
        assert after["status"] == "interrupted", after
        assert after["checkpoint_path"], "the checkpoint written before the kill is still recorded"
        r = httpx.post(f"{base}/api/training/{run_id}/resume", timeout=30)
        assert r.status_code == 202, r.text
        done = _poll(lambda: httpx.get(f"{base}/api/training/{run_id}").json(),
                     lambda x: x["status"] in ("done", "failed"), 240, "the resumed run to finish")
        assert done["status"] == "done", done
        assert done["tokens_seen"] >= body["total_tokens"] * 0.99
        assert done["sae_ids"], "the resumed run registered its SAE"
        # the contexts trained across the kill are exactly those an uninterrupted run reads: the whole blocks
        # after the held-out slice, each once (an order-independent digest over them)
        from transformers import AutoTokenizer

        from interpretability_workbench.activations.corpus import default_corpus_path
        from interpretability_workbench.activations.packing import ContextPacker
        from interpretability_workbench.activations.sources import open_source
        from interpretability_workbench.activations.stream import context_digest

        m = done["metrics"]
        ctx, per = body["context_size"], body["context_size"] - 1
        block = math.ceil(body["buffer_tokens"] / per)
        assert m["train_contexts"] == math.ceil(m["train_tokens"] / (block * per)) * block
        packer = ContextPacker(open_source(default_corpus_path()), AutoTokenizer.from_pretrained(tiny_llama_dir), ctx,
                               held_out_contexts=m["held_out_contexts"], epochs=None)
        packer.held_out()
        assert f"{context_digest(packer.take(m['train_contexts'])):016x}" == m["contexts_digest"]
        sae = httpx.get(f"{base}/api/saes/{done['sae_ids'][0]}").json()
        assert sae["id"] == done["sae_ids"][0]
        # the served process logs one JSON line a request, with its latency
        lines = [json.loads(ln) for ln in log.read_text(errors="replace").splitlines() if ln.startswith("{")]
        access = [ln for ln in lines if ln.get("msg") == "request" and ln.get("route") == "/api/training/{run_id}"]
        assert access and {"method", "path", "status", "latency_ms"} <= set(access[-1])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
