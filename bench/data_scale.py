"""Data at scale: server memory does not grow with the corpus, and a sweep shares the model forward.

Part 1 (memory). For each corpus size (default 50 MB and 1 GB; ``BENCH_SIZES_MB=50,1024``) the bench writes
synthetic JSONL text (seeded pseudo-words, nothing downloaded), starts a real server (``run.py``, its own
workspace, the default model unless ``BENCH_MODEL`` names another), uploads the file through
``POST /api/corpora`` as a streamed raw body, waits for the background token count, trains
``BENCH_TRAIN_TOKENS`` (100k) tokens from it at ``BENCH_LAYER`` (6), and reads the server's peak resident
memory (VmHWM). It prints the peak RSS of each and then the ratio largest / smallest (target <= 1.2).

Part 2 (sweep). In one process on the same model: a sweep of 4 SAEs (2 widths x 2 k) at one hook against the
same 4 configurations trained as 4 separate runs (``BENCH_SWEEP_TOKENS`` each, built-in corpus). The last
line is the time ratio sweep / separate runs (target <= 0.5).

``BENCH_PARTS=1`` or ``=2`` runs one part only.

Measured 2026-11-27 on the 2-core CPU:

* part 1 (a loaded machine; ``BENCH_TRAIN_TOKENS=20000``, so 16,384 tokens trained, not 100k): 50 MiB corpus
  uploaded in 0.5 s, 20.5M tokens counted in 31.9 s; 1 GiB corpus uploaded in 5.2 s, 419.8M tokens counted in
  820.5 s; server RSS 485 MiB ready, 493 MiB after the 1 GiB upload (+8 MiB), 534 MiB after its count (it
  rose to about 1.2 GiB while counting, by outside sampling, and fell back: not explained); peak RSS with
  training 1884 MiB (50 MiB) vs 2048 MiB (1 GiB): ratio 1.087 (target <= 1.2: met).
* part 2 (idle machine, 65,536 tokens per SAE, d_sae 1152/2304 x k 16/32 at layer 6): the sweep's four SAEs
  reach the same held-out FVU as the four trained alone (0.6794 / 0.5196 / 0.6845 / 0.5315, equal to 4
  decimals; batch 4096 leaves 16 steps, hence the high FVU); sweep 89.1 s vs 4 separate runs 211.6 s: time
  ratio 0.421 (target <= 0.5: met).
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
SIZES_MB = [float(x) for x in os.environ.get("BENCH_SIZES_MB", "50,1024").split(",") if x.strip()]
MODEL = os.environ.get("BENCH_MODEL", "default")
LAYER = int(os.environ.get("BENCH_LAYER", "6"))
TRAIN_TOKENS = int(os.environ.get("BENCH_TRAIN_TOKENS", "100000"))
SWEEP_TOKENS = int(os.environ.get("BENCH_SWEEP_TOKENS", "65536"))
PARTS = os.environ.get("BENCH_PARTS", "1,2")
MODELS_CACHE = Path(os.environ.get("IWB_HOME", REPO / "workspace")) / "models"
TRAIN = {"d_sae": 2304, "k": 32, "batch_size": 4096, "context_size": 128, "eval_tokens": 8192,
         "ce_eval_contexts": 4, "checkpoint_every": 0, "analyze": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# synthetic corpus ----------------------------------------------------------------------------
def _words(rng: random.Random, n: int) -> list[str]:
    syll = ["ka", "to", "ri", "mu", "sen", "la", "vo", "dre", "pi", "qua", "th", "ne", "xo", "bel", "ur", "fi",
            "gon", "ash", "il", "ver", "mo", "tak", "el", "zu"]
    return ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def write_corpus(path: Path, size_bytes: int, seed: int = 0) -> tuple[int, int]:
    """JSONL documents of 40-400 pseudo-words (Zipf-ish word frequencies, sentences with punctuation) until
    ``size_bytes``; returns (documents, bytes)."""
    rng = random.Random(seed)
    vocab = _words(rng, 20_000)
    cum, total = [], 0.0
    for i in range(len(vocab)):
        total += 1.0 / (i + 10)
        cum.append(total)
    pool = []
    for _ in range(4000):  # a pool of distinct documents, written in a random order with varying ids
        words = rng.choices(vocab, cum_weights=cum, k=rng.randint(40, 400))
        text = ". ".join(" ".join(words[i: i + 12]).capitalize() for i in range(0, len(words), 12)) + "."
        pool.append(text)
    encoded = [json.dumps(t) for t in pool]
    n = done = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        while done < size_bytes:
            line = f'{{"id": {n}, "text": {encoded[rng.randrange(len(encoded))]}}}\n'
            f.write(line)
            done += len(line)
            n += 1
    return n, path.stat().st_size


# a real server ---------------------------------------------------------------------------------
def vm(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key}")


def poll(fn: Callable[[], Any], ok: Callable[[Any], bool], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            last = fn()
            if ok(last):
                return last
        except Exception:  # noqa: BLE001 - the server may not listen yet
            pass
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}; last: {last}")


def chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while data := f.read(size):
            yield data


def one_size(path: Path, label: str) -> dict[str, float]:
    import httpx

    home = Path(tempfile.mkdtemp(prefix="iwb-bench-scale-"))
    (home / "models").symlink_to(MODELS_CACHE, target_is_directory=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "IWB_HOME": str(home), "IWB_MODEL": MODEL, "IWB_DEVICE": "cpu", "IWB_DTYPE": "float32",
           "HF_HUB_OFFLINE": "1", "IWB_LOG_LEVEL": "WARNING", "IWB_REQUEST_TIMEOUT_S": "600"}
    env.pop("IWB_API_KEY", None)
    log = open(home / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "run.py", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    out: dict[str, float] = {}
    try:
        poll(lambda: httpx.get(f"{base}/api/health").json(), lambda h: h["model_status"] == "ready", 600, "the model")
        out["rss_ready"] = vm(proc.pid, "VmRSS")
        t0 = time.perf_counter()
        r = httpx.post(f"{base}/api/corpora", params={"filename": path.name}, content=chunks(path),
                       headers={"content-type": "application/octet-stream"}, timeout=None)
        r.raise_for_status()
        out["upload_s"] = time.perf_counter() - t0
        out["rss_after_upload"] = vm(proc.pid, "VmHWM")
        cid = r.json()["id"]
        t0 = time.perf_counter()
        info = poll(lambda: httpx.get(f"{base}/api/corpora/{cid}").json(), lambda c: c["status"] != "counting",
                    24 * 3600, "the token count", every=2.0)
        if info["status"] != "ready":
            raise RuntimeError(f"count failed: {info}")
        out["count_s"], out["tokens"] = time.perf_counter() - t0, info["n_tokens"]
        out["rss_after_count"] = vm(proc.pid, "VmHWM")
        t0 = time.perf_counter()
        body = {"layer": LAYER, "hook": "resid_post", "total_tokens": TRAIN_TOKENS, "corpus": cid, **TRAIN}
        r = httpx.post(f"{base}/api/training", json=body, timeout=60)
        r.raise_for_status()
        run_id = r.json()["run_id"]
        run = poll(lambda: httpx.get(f"{base}/api/training/{run_id}").json(),
                   lambda x: x["status"] not in ("queued", "running"), 24 * 3600, "the run", every=2.0)
        if run["status"] != "done":
            raise RuntimeError(f"training {run['status']}: {run.get('error')}")
        out["train_s"], out["trained"] = time.perf_counter() - t0, run["train_tokens"]
        out["peak_rss"] = vm(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    mb = 1 << 20
    print(f"{label}: upload {out['upload_s']:.1f} s, {out['tokens']:,} tokens counted in {out['count_s']:.1f} s, "
          f"{out['trained']:,} trained in {out['train_s']:.1f} s; RSS ready {out['rss_ready'] / mb:.0f} MiB, "
          f"peak after upload {out['rss_after_upload'] / mb:.0f} MiB, after count {out['rss_after_count'] / mb:.0f} "
          f"MiB, peak {out['peak_rss'] / mb:.0f} MiB", flush=True)
    return out


def part_memory() -> None:
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="iwb-bench-corpus-"))
    for mb in sorted(SIZES_MB):
        path = tmp / f"synthetic-{mb:g}mb.jsonl"
        t0 = time.perf_counter()
        n_docs, size = write_corpus(path, int(mb * (1 << 20)))
        print(f"wrote {path.name}: {size / (1 << 20):.0f} MiB, {n_docs:,} documents in {time.perf_counter() - t0:.0f} s",
              flush=True)
        results.append((size, one_size(path, f"{size / (1 << 20):.0f} MiB corpus")))
        path.unlink()
    (small_size, small), (big_size, big) = results[0], results[-1]
    print(f"peak server RSS: {small['peak_rss'] / (1 << 20):.0f} MiB with {small_size / (1 << 20):.0f} MiB, "
          f"{big['peak_rss'] / (1 << 20):.0f} MiB with {big_size / (1 << 20):.0f} MiB")
    print(f"RSS ratio {big_size / (1 << 20):.0f} MiB / {small_size / (1 << 20):.0f} MiB corpus: "
          f"{big['peak_rss'] / small['peak_rss']:.3f} (target <= 1.2)", flush=True)


# sweep vs separate runs ----------------------------------------------------------------------
def part_sweep() -> None:
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState
    from interpretability_workbench.training.config import TrainingConfig

    home = Path(tempfile.mkdtemp(prefix="iwb-bench-sweep-"))
    (home / "models").symlink_to(MODELS_CACHE, target_is_directory=True)
    st = WorkbenchState(Settings(home=home, model=MODEL, device="cpu", dtype="float32"))
    try:
        st.load_model(MODEL)
        hook = f"blocks.{LAYER}.hook_resid_post"
        base = {k: v for k, v in TRAIN.items()}
        base.update(hook_names=[hook], total_tokens=SWEEP_TOKENS, accelerator="cpu", seed=0)
        grid = {"d_sae": [1152, 2304], "k": [16, 32]}

        def timed(cfg: TrainingConfig) -> tuple[float, dict]:
            t0 = time.perf_counter()
            row = st.training.wait(st.training.start(cfg))
            if row.status != "done":
                raise RuntimeError(f"run {row.status}: {row.error}")
            return time.perf_counter() - t0, row.metrics

        sweep_cfg = TrainingConfig(**base, sweep=grid)
        t_sweep, m_sweep = timed(sweep_cfg)
        t_solo, fvus = 0.0, []
        for member in sweep_cfg.members:
            t, m = timed(TrainingConfig(**{**base, **member.solo_overrides()}))
            t_solo += t
            fvus.append(m["members"][0]["held_out_fvu"])
            print(f"  alone: {member.label}: {t:.1f} s, held-out FVU {fvus[-1]:.4f}", flush=True)
        for p in m_sweep["members"]:
            print(f"  in the sweep: {p['label']}: held-out FVU {p['held_out_fvu']:.4f}, L0 {p['l0']:.1f}", flush=True)
        print(f"sweep of {len(sweep_cfg.members)} SAEs ({SWEEP_TOKENS} tokens each): {t_sweep:.1f} s; "
              f"{len(sweep_cfg.members)} separate runs: {t_solo:.1f} s")
        print(f"time ratio sweep / separate runs: {t_sweep / t_solo:.3f} (target <= 0.5)", flush=True)
    finally:
        st.shutdown()
        st.close()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if "1" in PARTS:
        part_memory()
    if "2" in PARTS:
        part_sweep()
