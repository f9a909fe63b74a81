"""Live patch latency on the default model: a patch change -> patched next-token logits over a real WebSocket,
against what a TransformerLens or nnsight user would write, on a 64-token prompt with patches at layer 6.

Scenarios (an SAE built here on blocks.6.hook_resid_post: 256 random unit decoder rows, plus features
constructed on the prompt; no trained SAE is available offline):

* steer: feature 0 steered (α·W_dec[0] added at every position); each change moves α over 0..9.5.
* clamp-throughout: a feature that fires from the start of the prompt (the prompt's mean residual
  direction), clamped at 0 (switched off); each change sends the clamp value 0 again.
* clamp-late: a feature that first fires in the last quarter (its direction is the part of a last-quarter
  residual orthogonal to every earlier one, its threshold just above the earlier activations), clamped at
  0; each change sends the clamp value 0 again.

Per change, measured the same way for all three:

* ours: ``set_strength`` over ``/ws`` until the recomputed ``logits`` message arrives (WebSocket round
  trip included). The server keeps the prompt's original run and reruns only blocks 6..29, only from the
  first position the patch changes (its cached keys and values cover the rest), projecting only the last
  position.
* realistic baseline (what TransformerLens / nnsight users do): the original logits are computed once
  and cached; each change is one forward of the whole prompt through the plain Hugging Face model
  (``use_cache=False``, ``logits_to_keep=1``: only the last position is projected) with the edit applied
  by a forward hook on block 6's output (steer: ``h + α·W_dec[0]``; clamp: the SAE splice
  ``h + (v − f(h))·W_dec[i]`` with ``f`` the SAE's encoder), then softmax and KL against the cached
  original. In process (no socket), in a worker thread like the server's compute, with no workbench patch
  applied to the model.
* naive (the old baseline, second line): two full forwards per change (original and patched, full
  vocabulary logits at every position), nothing reused; in process, worker thread.

Prints p50/p95 of each, and last the p95 ratio ours / realistic for the feature that fires throughout and
for the one that first fires in the last quarter (target <= 0.5x).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
N_ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))
N_BASE = int(os.environ.get("BENCH_NAIVE_ROUNDS", "30"))
WARMUP = 3
LAYER = 6


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_state():  # noqa: ANN201
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    home = Path(tempfile.mkdtemp(prefix="iwb-bench-"))
    cache = Path(os.environ.get("IWB_HOME", REPO / "workspace")) / "models"
    (home / "models").symlink_to(cache, target_is_directory=True)  # reuse the dequantized default model
    st = WorkbenchState(Settings(home=home, model="default", device="cpu", dtype="float32"))
    st.load_model("default")
    return st


def prompt_of(lm, n: int = 64) -> str:  # noqa: ANN001
    from interpretability_workbench.activations.corpus import load_texts

    text = " ".join(load_texts(None)[:50])
    ids = lm.tokenizer(text)["input_ids"][:n]
    out = lm.tokenizer.decode(ids)
    while len(lm.tokenizer(out)["input_ids"]) > n:
        out = out[: out.rfind(" ")]
    return out


def in_worker(fn: Callable[[], None]) -> None:
    """Run ``fn`` in a worker thread, like the server's compute (torch on the main thread can be far slower
    on a busy CPU)."""
    t = threading.Thread(target=fn)
    t.start()
    t.join()


# features --------------------------------------------------------------------------------------------
def build_sae(st, text: str):  # noqa: ANN001, ANN201
    """The SAE with feature 1 firing throughout and feature 2 first firing in the last quarter; returns
    (sae id, sae, first firing position of 1, of 2)."""
    from interpretability_workbench.model.hooks import run_with_cache
    from interpretability_workbench.model.tokenize import encode_prompt
    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder

    lm = st.lm
    hook = f"blocks.{LAYER}.hook_resid_post"
    ids = encode_prompt(lm, text)
    n = int(ids.shape[1])
    with st.patches.original:
        h = run_with_cache(lm.model, ids, [hook]).cache[hook][0].float()  # [pos d_model]
    sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=256, hook_name=hook, model_id=lm.model_id,
                                      architecture="standard"))
    sae.reset_parameters(seed=0)
    late = (3 * n + 3) // 4  # first position of the last quarter
    q, _ = torch.linalg.qr(h[:late].double().T)  # [d_model late]
    d_late = h[late].double() - q @ (q.T @ h[late].double())
    d_late = (d_late / d_late.norm()).float()
    d_mean = h[1:].mean(0)
    d_mean = d_mean / d_mean.norm()
    with torch.no_grad():
        for i, d in ((1, d_mean), (2, d_late)):
            sae.W_dec[i] = d
            sae.W_enc[:, i] = d
        sae.b_enc[2] = -1e-3 * float(h[late] @ d_late)
    f = sae.encode(h)  # [pos d_sae]
    first = [int((f[:, i] > 0).nonzero()[0, 0]) for i in (1, 2)]
    assert first[1] >= late, first
    sid = st.saes.register(sae, source="imported")
    return sid, st.saes.get(sid).sae, first[0], first[1], n


# measurements ----------------------------------------------------------------------------------------
def measure_ours(st, text: str, pid: str, strengths: Callable[[int], float]) -> tuple[list[float], list[float]]:  # noqa: ANN001
    import uvicorn
    from websockets.sync.client import connect

    from interpretability_workbench.server.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(st.settings, st, load_model=False), host="127.0.0.1",
                                           port=port, log_level="warning", ws="websockets-sansio"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    ours: list[float] = []
    server_ms: list[float] = []
    try:
        with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            def wait_logits(min_seq: int) -> dict:
                while True:
                    m = json.loads(ws.recv())
                    if m["type"] == "error":
                        raise RuntimeError(m)
                    if m["type"] == "logits" and m["seq"] >= min_seq:
                        return m

            ws.send(json.dumps({"type": "subscribe_logits", "text": text, "top_k": 10, "patch_ids": [pid]}))
            seq = wait_logits(1)["seq"]
            for i in range(N_ROUNDS + WARMUP):
                t0 = time.perf_counter()
                ws.send(json.dumps({"type": "set_strength", "patch_id": pid, "strength": strengths(i)}))
                m = wait_logits(seq + 1)
                dt = (time.perf_counter() - t0) * 1000
                seq = m["seq"]
                if i >= WARMUP:
                    ours.append(dt)
                    server_ms.append(m["compute_ms"])
    finally:
        server.should_exit = True
        th.join(timeout=10)
    return ours, server_ms


def measure_naive(st, ids: torch.Tensor, pid: str, strengths: Callable[[int], float]) -> list[float]:  # noqa: ANN001
    lm, out = st.lm, []

    @torch.no_grad()
    def loop() -> None:
        for i in range(N_BASE + WARMUP):
            t0 = time.perf_counter()
            st.patches.set_strength(pid, strengths(i))
            with st.patches.using([]):
                o = lm.model(input_ids=ids, use_cache=False).logits[0, -1].softmax(-1)
            with st.patches.using([pid]):
                p = lm.model(input_ids=ids, use_cache=False).logits[0, -1].softmax(-1)
            _ = (o * (o.log() - p.log())).sum()
            if i >= WARMUP:
                out.append((time.perf_counter() - t0) * 1000)

    in_worker(loop)
    return out


def measure_realistic(st, ids: torch.Tensor, edit: Callable[[torch.Tensor, float], torch.Tensor],  # noqa: ANN001
                      strengths: Callable[[int], float]) -> list[float]:
    """Cached original, then per change one hooked forward projecting only the last position (the model
    carries no workbench patch here)."""
    from interpretability_workbench.model.hook_map import get_layers

    lm, out = st.lm, []
    block = get_layers(lm.model)[LAYER]

    @torch.no_grad()
    def loop() -> None:
        orig = lm.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[0, -1].float().log_softmax(-1)
        for i in range(N_BASE + WARMUP):
            t0 = time.perf_counter()
            v = strengths(i)

            def hook(_m, _a, o):  # noqa: ANN001, ANN202
                return edit(o, v) if isinstance(o, torch.Tensor) else (edit(o[0], v), *o[1:])

            handle = block.register_forward_hook(hook)
            try:
                lp = lm.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[0, -1].float().log_softmax(-1)
            finally:
                handle.remove()
            _ = (orig.exp() * (orig - lp)).sum()
            _ = lp.topk(10)
            if i >= WARMUP:
                out.append((time.perf_counter() - t0) * 1000)

    in_worker(loop)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); 1 on a CPU shared with other jobs, where "
                        "threads that must meet at every op wait for each other's turn")
    p.add_argument("--scenarios", default="steer,clamp-throughout,clamp-late")
    a = p.parse_args()
    from interpretability_workbench.model.tokenize import encode_prompt

    if a.threads:
        torch.set_num_threads(a.threads)
    st = make_state()
    lm = st.lm
    text = prompt_of(lm)
    ids = encode_prompt(lm, text)
    sid, sae, first_through, first_late, n = build_sae(st, text)
    print(f"model {lm.model_id}, prompt {n} tokens, patches at layer {LAYER} of {lm.n_layers}, "
          f"torch threads {torch.get_num_threads()}; {N_ROUNDS} changes (ours), {N_BASE} (baselines)")
    dirs = sae.W_dec.detach()  # [d_sae d_model]
    sweep = lambda i: 0.5 * (i % 20)  # noqa: E731
    zero = lambda i: 0.0  # noqa: E731
    scenarios = {
        "steer": (dict(features=[0], mode="steer", strength=0.0), sweep,
                  lambda h, v: h + v * dirs[0].to(h.dtype), "feature 0 steered, changes every position"),
        "clamp-throughout": (dict(features=[1], mode="clamp", strength=0.0), zero,
                             lambda h, v: h + ((v - sae.encode(h.float())[..., 1:2]) * dirs[1]).to(h.dtype),
                             f"feature 1 clamped at 0, first fires at position {first_through}"),
        "clamp-late": (dict(features=[2], mode="clamp", strength=0.0), zero,
                       lambda h, v: h + ((v - sae.encode(h.float())[..., 2:3]) * dirs[2]).to(h.dtype),
                       f"feature 2 clamped at 0, first fires at position {first_late} of {n}"),
    }
    ratios: dict[str, float] = {}
    for name in a.scenarios.split(","):
        kw, strengths, edit, what = scenarios[name]
        patch = st.patches.create(sae_id=sid, **kw)
        st.patches.set_strength(patch.id, strengths(1))
        live = st.inference.session().logits_detail(text, [patch.id])
        ours, server_ms = measure_ours(st, text, patch.id, strengths)
        naive = measure_naive(st, ids, patch.id, strengths)
        st.patches.delete(patch.id)  # the realistic baseline runs on the plain model
        real = measure_realistic(st, ids, edit, strengths)
        ratios[name] = pct(ours, 95) / pct(real, 95)
        print(f"[{name}] {what}; ours reruns blocks {live.from_layer}..{lm.n_layers - 1} from position "
              f"{live.from_position}")
        print(f"  ours      (WebSocket round trip):                          p50 {pct(ours, 50):7.1f} ms  "
              f"p95 {pct(ours, 95):7.1f} ms  (server compute p50 {pct(server_ms, 50):.1f} ms)")
        print(f"  realistic (cached original + one hooked forward, last pos): p50 {pct(real, 50):7.1f} ms  "
              f"p95 {pct(real, 95):7.1f} ms")
        print(f"  naive     (two full forwards, all logits):                  p50 {pct(naive, 50):7.1f} ms  "
              f"p95 {pct(naive, 95):7.1f} ms")
        print(f"  p95 ratio ours/realistic {ratios[name]:.3f}, ours/naive {pct(ours, 95) / pct(naive, 95):.3f}; "
              f"target <= 0.5x realistic -> {'met' if ratios[name] <= 0.5 else 'NOT met'}")
    st.close()
    last = ", ".join(f"{k.removeprefix('clamp-')} {v:.3f}" for k, v in ratios.items() if k.startswith("clamp-"))
    print(f"p95 ratio ours/realistic: {last or ', '.join(f'{k} {v:.3f}' for k, v in ratios.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
