"""Live patch latency on the default model: strength change -> patched logits over a real WebSocket.

A 64-token prompt and one steer patch at layer 6 (a hand-built SAE with random unit decoder rows at
blocks.6.hook_resid_post). Ours: the server keeps the original result and the prompt's resid_pre at block
6, reruns blocks 6..29 and projects only the last position. Naive (same run, in process, no socket
overhead): two full forwards per change (original and patched), nothing reused.
Targets: p95 <= 250 ms and <= 0.5x naive. The last line is the p95 ratio ours / naive.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
N_ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))
N_NAIVE = int(os.environ.get("BENCH_NAIVE_ROUNDS", "30"))
WARMUP = 3


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_state():
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    home = Path(tempfile.mkdtemp(prefix="iwb-bench-"))
    cache = Path(os.environ.get("IWB_HOME", REPO / "workspace")) / "models"
    home.mkdir(exist_ok=True)
    (home / "models").symlink_to(cache, target_is_directory=True)  # reuse the dequantized default model
    st = WorkbenchState(Settings(home=home, model="default", device="cpu", dtype="float32"))
    st.load_model("default")
    return st


def prompt_of(lm, n: int = 64) -> str:
    from interpretability_workbench.activations.corpus import load_texts

    text = " ".join(load_texts(None)[:50])
    ids = lm.tokenizer(text)["input_ids"][:n]
    out = lm.tokenizer.decode(ids)
    while len(lm.tokenizer(out)["input_ids"]) > n:
        out = out[: out.rfind(" ")]
    return out


def main() -> int:
    import uvicorn
    from websockets.sync.client import connect

    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder
    from interpretability_workbench.server.app import create_app

    st = make_state()
    lm = st.lm
    sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=256, hook_name="blocks.6.hook_resid_post",
                                      model_id=lm.model_id, k=16))
    sae.reset_parameters(seed=0)  # random unit decoder rows
    sid = st.saes.register(sae, source="imported")
    patch = st.patches.create(sae_id=sid, features=[0], mode="steer", strength=0.0)
    text = prompt_of(lm)
    n_tok = len(lm.tokenizer(text)["input_ids"])
    print(f"model {lm.model_id}, prompt {n_tok} tokens, steer patch at layer 6, torch threads {torch.get_num_threads()}")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(st.settings, st, load_model=False), host="127.0.0.1",
                                           port=port, log_level="warning", ws="websockets-sansio"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)

    ours: list[float] = []
    server_ms: list[float] = []
    with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
        def wait_logits(min_seq: int) -> dict:
            while True:
                m = json.loads(ws.recv())
                if m["type"] == "error":
                    raise RuntimeError(m)
                if m["type"] == "logits" and m["seq"] >= min_seq:
                    return m

        ws.send(json.dumps({"type": "subscribe_logits", "text": text, "top_k": 10, "patch_ids": [patch.id]}))
        seq = wait_logits(1)["seq"]
        for i in range(N_ROUNDS + WARMUP):
            t0 = time.perf_counter()
            ws.send(json.dumps({"type": "set_strength", "patch_id": patch.id, "strength": 0.5 * (i % 20)}))
            m = wait_logits(seq + 1)
            dt = (time.perf_counter() - t0) * 1000
            seq = m["seq"]
            if i >= WARMUP:
                ours.append(dt)
                server_ms.append(m["compute_ms"])
    server.should_exit = True
    th.join(timeout=10)

    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]
    naive: list[float] = []

    @torch.no_grad()
    def naive_loop() -> None:
        for i in range(N_NAIVE + WARMUP):
            t0 = time.perf_counter()
            st.patches.set_strength(patch.id, 0.5 * (i % 20))
            with st.patches.using([]):
                o = lm.model(input_ids=ids, use_cache=False).logits[0, -1].softmax(-1)
            with st.patches.using([patch.id]):
                p = lm.model(input_ids=ids, use_cache=False).logits[0, -1].softmax(-1)
            _ = (o * (o.log() - p.log())).sum()
            dt = (time.perf_counter() - t0) * 1000
            if i >= WARMUP:
                naive.append(dt)

    # a worker thread, like the server's compute (torch on the main thread can be far slower on a busy CPU)
    worker = threading.Thread(target=naive_loop)
    worker.start()
    worker.join()

    print(f"ours  (WebSocket round trip, {len(ours)} changes): p50 {pct(ours, 50):7.1f} ms  p95 {pct(ours, 95):7.1f} ms"
          f"  (server compute p50 {pct(server_ms, 50):.1f} ms)")
    print(f"naive (two full forwards, in process, worker thread, {len(naive)} changes): p50 {pct(naive, 50):7.1f} ms  p95 {pct(naive, 95):7.1f} ms")
    print(f"target: p95 <= 250 ms -> {'met' if pct(ours, 95) <= 250 else 'NOT met'}; ratio <= 0.5 -> "
          f"{'met' if pct(ours, 95) <= 0.5 * pct(naive, 95) else 'NOT met'}")
    print(f"p95 ratio ours/naive: {pct(ours, 95) / pct(naive, 95):.3f}")
    st.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
