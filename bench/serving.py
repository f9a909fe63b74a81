"""Many clients on one server: 64 concurrent clients vs one client at a time on POST /api/inference.

    python bench/serving.py                                  # CPU half: the default model (SmolLM2-135M, fp32)
    python bench/serving.py --device cuda --shape llama-8b   # GPU half: a Llama-3.1-8B-shaped model, bf16

The server is the workbench's own (a uvicorn on 127.0.0.1 in this process, production middleware with the
admission queue, the engine's batcher); the clients run in a separate process (asyncio + httpx), so their
work does not share the server's interpreter lock. The same distinct prompts (the built-in corpus cut to
16..48 tokens) are sent:

* sequential: one client, one request at a time (the baseline; the batcher then runs batches of one);
* concurrent: 64 clients, each sending its requests back to back.

The GPU half builds a random model with Llama-3.1-8B's shape in process (``from_config`` inside
``torch.device("cuda")``: the weights are initialised on the GPU in bf16, nothing is downloaded) and uses the
default model's tokenizer (its ids are all below the 8B vocabulary).

Printed: which half ran, throughput and p50/p95 latency of both, the batches the server formed, status
counts (zero 5xx required), whether the concurrent answers equal the sequential ones, and last the
throughput ratio concurrent / sequential (targets: >= 1.5x on CPU, >= 3x on GPU).
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
N_CLIENTS = 64


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] if s else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# clients (a spawned process: only httpx and asyncio) ------------------------------------------------
def _clients(base: str, per_client: list[list[tuple[int, dict]]], conn) -> None:  # noqa: ANN001
    import httpx

    out: list[tuple[int, float, int, object]] = []

    async def one(c: httpx.AsyncClient, items: list[tuple[int, dict]]) -> None:
        for idx, body in items:
            t0 = time.perf_counter()
            r = await c.post("/api/inference", json=body)
            dt = time.perf_counter() - t0
            out.append((idx, dt, r.status_code, r.json() if r.status_code == 200 else r.text))

    async def main() -> float:
        limits = httpx.Limits(max_connections=len(per_client) + 8, max_keepalive_connections=len(per_client) + 8)
        async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as c:
            t0 = time.perf_counter()
            await asyncio.gather(*(one(c, items) for items in per_client))
            return time.perf_counter() - t0

    wall = asyncio.run(main())
    conn.send((wall, out))
    conn.close()


def drive(base: str, per_client: list[list[tuple[int, dict]]]) -> tuple[float, list]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_clients, args=(base, per_client, child))
    p.start()
    wall, out = parent.recv()
    p.join()
    return wall, out


# the model -------------------------------------------------------------------------------------------
def llama_8b_config():  # noqa: ANN201
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                       rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
                       rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 8192})


def llama_tiny_config():  # noqa: ANN201
    """The 8B recipe at toy size: exercises the GPU half's code path on any machine."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=49152, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                       tie_word_embeddings=False)


SHAPES = {"llama-8b": llama_8b_config, "llama-tiny": llama_tiny_config}


def random_model(shape: str, device: str, dtype: str, tokenizer_from):  # noqa: ANN001, ANN201
    """A randomly initialised model of ``shape``, built on ``device`` in ``dtype`` (weights never leave it),
    wrapped as the workbench's LoadedModel with the given model's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from interpretability_workbench.model.hook_map import arch_for
    from interpretability_workbench.model.loader import LoadedModel

    t0 = time.perf_counter()
    cfg = SHAPES[shape]()
    dt = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dt)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedModel(name=f"random-{shape}", model_id=f"random-{shape}", revision="random", model=model,
                       tokenizer=tokenizer_from.tokenizer, family=arch_for(model).family,
                       architecture=type(model).__name__, n_layers=cfg.num_hidden_layers, d_model=cfg.hidden_size,
                       vocab_size=cfg.vocab_size, device=torch.device(device), dtype=dt,
                       load_seconds=time.perf_counter() - t0)


def make_state(a: argparse.Namespace):  # noqa: ANN201
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    home = Path(tempfile.mkdtemp(prefix="iwb-bench-"))
    cache = Path(os.environ.get("IWB_HOME", REPO / "workspace")) / "models"
    (home / "models").symlink_to(cache, target_is_directory=True)  # reuse the dequantized default model
    s = Settings(home=home, model="default", device="cpu", dtype="float32", rate_limit="10000000/minute",
                 max_concurrent_inference=a.max_concurrent, max_queued=max(N_CLIENTS, a.clients) + 8,
                 request_timeout_s=600, log_json=False, log_level="WARNING")
    st = WorkbenchState(s)
    default = st.load_model("default")
    if a.shape != "default":
        st.model.adopt(random_model(a.shape, a.device, a.dtype, default))
    return st


def prompts(lm, n: int) -> list[str]:  # noqa: ANN001
    """``n`` distinct prompts of 16..48 tokens from the built-in corpus."""
    from interpretability_workbench.activations.corpus import load_texts

    ids = lm.tokenizer(" ".join(load_texts(None)[:400]))["input_ids"]
    out, pos = [], 0
    for i in range(n):
        length = 16 + (i * 13) % 33
        out.append(lm.tokenizer.decode(ids[pos:pos + length]))
        pos += length
    return out


def add_patch(st, kind: str) -> list[str]:  # noqa: ANN001
    if kind == "none":
        return []
    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder

    lm = st.lm
    layer = lm.n_layers // 5
    sae = SparseAutoencoder(SAEConfig(d_in=lm.d_model, d_sae=256, hook_name=f"blocks.{layer}.hook_resid_post",
                                      model_id=lm.model_id, k=16))
    sae.reset_parameters(seed=0)
    sid = st.saes.register(sae, source="imported")
    return [st.patches.create(sae_id=sid, features=[0], mode="steer", strength=4.0).id]


def summarize(name: str, wall: float, out: list) -> tuple[float, dict[int, int]]:
    codes: dict[int, int] = {}
    for _, _, code, _ in out:
        codes[code] = codes.get(code, 0) + 1
    lat = [dt * 1000 for _, dt, code, _ in out if code == 200]
    rps = len(out) / wall
    print(f"{name}: {len(out)} requests in {wall:.2f}s -> {rps:7.2f} req/s; latency p50 {pct(lat, 50):8.1f} ms"
          f"  p95 {pct(lat, 95):8.1f} ms; status {dict(sorted(codes.items()))}")
    return rps, codes


def compare_answers(seq: list, conc: list, exact: bool) -> str:
    """Concurrent answers against the sequential answer to the same prompt."""
    ref = {idx: body for idx, _, code, body in seq if code == 200}
    worst, top1, n = 0.0, 0, 0
    for idx, _, code, body in conc:
        if code != 200 or idx not in ref:
            continue
        a, b = body, ref[idx]
        n += 1
        top1 += a["original"][0]["id"] == b["original"][0]["id"]
        pa = {t["id"]: t["prob"] for t in a["original"]}
        worst = max([worst] + [abs(pa[t["id"]] - t["prob"]) for t in b["original"] if t["id"] in pa])
    verdict = "equal" if (worst <= 1e-5 and top1 == n) else ("NOT equal" if exact else "close")
    return f"{verdict}: {n} answers, top-1 agreement {top1}/{n}, max |delta p| {worst:.2e}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu (default model) or cuda (with --shape)")
    p.add_argument("--shape", default="default", choices=["default", *SHAPES],
                   help="default: the embedded default model; llama-8b: a random Llama-3.1-8B-shaped model")
    p.add_argument("--dtype", default=None, help="for --shape: bfloat16 (default on cuda) or float32")
    p.add_argument("--clients", type=int, default=N_CLIENTS)
    p.add_argument("--requests-per-client", type=int, default=4)
    p.add_argument("--sequential", type=int, default=64, help="requests in the one-at-a-time baseline")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="IWB_MAX_CONCURRENT_INFERENCE for the server (default: the setting's default)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); 1 on a CPU shared with other jobs, where "
                        "threads that must meet at every op wait for each other's turn")
    p.add_argument("--patches", choices=["none", "steer"], default="none",
                   help="steer: every request compares against a steer patch at a fifth of the depth")
    a = p.parse_args()
    a.dtype = a.dtype or ("bfloat16" if a.device.startswith("cuda") else "float32")
    if a.max_concurrent is None:
        from interpretability_workbench.settings import Settings

        a.max_concurrent = Settings.model_fields["max_concurrent_inference"].default
    if a.shape == "default" and a.device != "cpu":
        p.error("the default model runs on the CPU half; give --shape llama-8b with --device cuda")

    import torch
    import uvicorn

    from interpretability_workbench.server.app import create_app

    if a.threads:
        torch.set_num_threads(a.threads)
    st = make_state(a)
    lm = st.lm
    half = "GPU" if a.device.startswith("cuda") else "CPU"
    gpu = f", {torch.cuda.get_device_name(0)}" if half == "GPU" else f", torch threads {torch.get_num_threads()}"
    print(f"half: {half} — model {lm.model_id} ({sum(q.numel() for q in lm.model.parameters()) / 1e9:.2f}B params, "
          f"{str(lm.dtype).removeprefix('torch.')}, {lm.device}{gpu})")
    pids = add_patch(st, a.patches)
    texts = prompts(lm, max(a.clients, a.sequential))
    body = lambda i: {"text": texts[i], "top_k": 5, "patch_ids": pids}  # noqa: E731
    print(f"{len(texts)} distinct prompts of 16..48 tokens; patches: {a.patches}; server: "
          f"IWB_MAX_CONCURRENT_INFERENCE={a.max_concurrent}, IWB_MAX_QUEUED={st.settings.max_queued}")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(st.settings, st, load_model=False), host="127.0.0.1",
                                           port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        drive(base, [[(i, body(i)) for i in range(4)]])  # warm-up
        seq_wall, seq = drive(base, [[(i, body(i)) for i in range(a.sequential)]])
        b0 = st.inference.batch_stats()
        per_client = [[(c, body(c)) for _ in range(a.requests_per_client)] for c in range(a.clients)]
        conc_wall, conc = drive(base, per_client)
        b1 = st.inference.batch_stats()
    finally:
        server.should_exit = True
        th.join(timeout=30)
    seq_rps, _ = summarize("sequential (1 client, one request at a time)", seq_wall, seq)
    conc_rps, codes = summarize(f"concurrent ({a.clients} clients x {a.requests_per_client})", conc_wall, conc)
    n_b, n_r = b1.batches - b0.batches, b1.requests - b0.requests
    print(f"server batches under load: {n_b} for {n_r} requests (mean {n_r / max(n_b, 1):.1f}, largest {b1.largest})")
    print(f"answers, concurrent vs sequential (same prompt): {compare_answers(seq, conc, exact=half == 'CPU')}")
    n5 = sum(v for k, v in codes.items() if k >= 500)
    target = 3.0 if half == "GPU" else 1.5
    ratio = conc_rps / seq_rps
    print(f"5xx: {n5} -> {'zero' if n5 == 0 else 'NOT zero'}; target throughput ratio >= {target}x -> "
          f"{'met' if ratio >= target else 'NOT met'}")
    print(f"throughput ratio concurrent/sequential ({half}): {ratio:.2f}x")
    st.shutdown()
    st.close()
    return 0 if n5 == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
