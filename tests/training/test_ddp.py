"""Multi-process DDP training from the CLI: two CPU processes on gloo, one run, one SAE, a global token
budget; the server refuses multi-process settings with a pointer to the CLI."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interpretability_workbench.training.config import TrainingConfig
from interpretability_workbench.training.ddp import FOLLOW_ENV, follower_run_id, is_multiprocess, world_size

BATCH, TOKENS = 512, 20_000


def _cli(tmp_path: Path, model: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    exe = Path(sys.executable).with_name("microscope")
    if not exe.exists():
        pytest.skip("the microscope console script is not installed next to this python")
    env = {**os.environ, "IWB_HOME": str(tmp_path / "home"), "IWB_DEVICE": "cpu", "IWB_DTYPE": "float32",
           "HF_HUB_OFFLINE": "1"}
    for k in (FOLLOW_ENV, "LOCAL_RANK", "NODE_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return [str(exe), "train", "--model", str(model), *args], env


def _train_args(tokens: int) -> list[str]:
    return ["--layer", "1", "--tokens", str(tokens), "--d-sae", "128", "--k", "8", "--batch-size", str(BATCH),
            "--context-size", "32", "--devices", "2", "--strategy", "ddp", "--ce-contexts", "2",
            "--eval-tokens", "1024", "--checkpoint-every", "10"]


def _db(tmp_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "home" / "workbench.sqlite3")
    db.row_factory = sqlite3.Row
    return db


@pytest.mark.slow
def test_cli_ddp_two_cpu_processes_one_run(tmp_path: Path, tiny_llama_dir: Path) -> None:
    cmd, env = _cli(tmp_path, tiny_llama_dir, *_train_args(TOKENS))
    home = tmp_path / "home"
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("held-out FVU") == 1, proc.stdout  # only rank 0 prints final metrics

    db = _db(tmp_path)
    assert (home / "workbench.sqlite3").exists()
    runs = db.execute("SELECT * FROM runs").fetchall()
    assert len(runs) == 1, [dict(r) for r in runs]
    run = runs[0]
    assert run["status"] == "done", run["error"]
    assert TOKENS - BATCH < run["tokens_seen"] <= TOKENS  # global budget, not per process
    assert run["step"] == TOKENS // BATCH
    saes = db.execute("SELECT * FROM saes").fetchall()
    assert len(saes) == 1 and saes[0]["run_id"] == run["id"]
    summary = json.loads(run["metrics_json"])
    assert summary["members"][0]["held_out_fvu"] < 1.0
    assert summary["world_size"] == 2 and summary["train_tokens"] == run["tokens_seen"]
    hist = [json.loads(r["data_json"]) | {"tokens": r["tokens"]}
            for r in db.execute("SELECT * FROM metrics WHERE run_id = ? ORDER BY step", (run["id"],))]
    assert hist and all(h["world_size"] == 2 for h in hist)  # both processes took part in every step
    assert hist[-1]["tokens"] == run["tokens_seen"]


@pytest.mark.slow
def test_cli_ddp_ctrl_c_stops_both_ranks_then_resume_completes(tmp_path: Path, tiny_llama_dir: Path) -> None:
    tokens = 300_000
    cmd, env = _cli(tmp_path, tiny_llama_dir, *_train_args(tokens))
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # until a step has been recorded
            if (tmp_path / "home" / "workbench.sqlite3").exists():
                try:
                    row = _db(tmp_path).execute("SELECT step FROM runs").fetchone()
                except sqlite3.OperationalError:  # the file exists before its tables (migrations running)
                    row = None
                if row is not None and row["step"] >= 10:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # rank 0 only: the cancel decision is all-reduced to rank 1
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:]
    assert "Connection closed" not in out, out[-3000:]  # rank 1 stopped at the same step, no broken collective
    run = _db(tmp_path).execute("SELECT * FROM runs").fetchone()
    assert run["status"] == "interrupted" and 0 < run["step"] < tokens // BATCH, dict(run)
    ck = json.loads((tmp_path / "home" / "runs" / run["id"] / "checkpoint" / "state.json").read_text())
    assert ck["step"] == run["step"]

    cmd, env = _cli(tmp_path, tiny_llama_dir, "--resume", run["id"])
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    db = _db(tmp_path)
    (row,) = db.execute("SELECT * FROM runs").fetchall()
    assert row["status"] == "done" and row["step"] == tokens // BATCH
    assert tokens - BATCH < row["tokens_seen"] <= tokens
    assert json.loads(row["metrics_json"])["world_size"] == 2
    assert len(db.execute("SELECT * FROM saes").fetchall()) == 1


def test_world_size_and_follower_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = lambda **kw: TrainingConfig(hook_names=["blocks.0.hook_resid_post"], accelerator="cpu", **kw)  # noqa: E731
    assert world_size(cfg()) == 1 and not is_multiprocess(cfg())
    assert world_size(cfg(devices=2)) == 2 and is_multiprocess(cfg(devices="2"))
    assert world_size(cfg(devices="0,1", num_nodes=2)) == 4
    assert is_multiprocess(cfg(strategy="ddp"))
    for k in ("LOCAL_RANK", "NODE_RANK", "RANK", FOLLOW_ENV):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert follower_run_id() is None  # a rank without a leader run is not a follower
    monkeypatch.setenv(FOLLOW_ENV, "run_x")
    assert follower_run_id() == "run_x"
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert follower_run_id() is None  # rank 0 leads


@pytest.mark.parametrize("extra", [{"devices": 2, "strategy": "ddp"}, {"strategy": "ddp"}, {"devices": 2}])
def test_server_refuses_multiprocess_training(client, extra) -> None:
    body = {"layer": 1, "d_sae": 64, "k": 4, "total_tokens": 1024, "batch_size": 256, "context_size": 32, **extra}
    r = client.post("/api/training", json=body)
    assert r.status_code == 422, r.text
    assert "microscope train --devices N --strategy ddp" in r.json()["detail"]
    assert client.get("/api/training").json() == []
