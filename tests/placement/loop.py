"""The whole REST loop on whatever model the client's state holds: train → analyse → features → contrast →
ablate patch → /api/inference → /api/provenance → PEFT export reloaded in ``peft`` → SAELens export loaded in
``sae_lens``. Shared by the bf16 tests on CPU, the default-model integration test and the GPU tests; each
asserts its own tolerances on the measured quantities returned here."""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.model.tokenize import encode_prompt

POSITIVE = ["def read(path):\n    return open(path).read()", "Return the number of items in the list.",
            "if value is None:\n    return default", "Compute the sum and return it."]
NEGATIVE = ["The module provides a class for parsing", "This document describes the protocol.",
            "A class that holds configuration values", "The parser reads the header first."]
PROMPT = "Return the number of items in the container"


class LoopResult(NamedTuple):
    sae_ids: list[str]
    """Trained SAEs, lowest layer first."""
    statuses: dict[str, int]
    """Step -> HTTP status."""
    patch_id: str
    feature: int
    """The ablated feature (the contrast's strongest)."""
    max_prob_diff_peft: float
    """max |p_workbench − p_peft| over the vocabulary, patched next-token distribution, every prompt."""
    max_prob_change_patch: float
    """max |p_patched − p_original| (the patch must matter more than the PEFT difference)."""
    max_encode_diff_saelens: float
    """max |f_ours − f_saelens| on the model's activations (float32)."""
    n_analysed: int
    provenance_edges: int
    seconds: dict[str, float]


def wait_for(client, url: str, done: Callable[[dict], bool], timeout: float = 1800) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        body = client.get(url).json()
        if done(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish in {timeout} s")


def _ok(statuses: dict[str, int], step: str, r, want: int = 200):
    statuses[step] = r.status_code
    assert r.status_code == want, f"{step}: {r.status_code} {r.text[:500]}"
    return r


def run_rest_loop(client, state, tmp: Path, base_model: Callable[[], torch.nn.Module], *, layers: list[int],
                  d_sae: int = 256, k: int = 16, total_tokens: int = 16_384, batch_size: int = 1024,
                  context_size: int = 64, analysis_tokens: int = 4_096, prompts: list[str] | None = None) -> LoopResult:
    """Run the loop; ``base_model()`` loads a fresh copy of the base model (same dtype and device) for PEFT."""
    st: dict[str, int] = {}
    secs: dict[str, float] = {}
    prompts = prompts or [PROMPT, POSITIVE[0], NEGATIVE[1]]
    t = time.perf_counter()
    r = _ok(st, "train", client.post("/api/training", json=dict(
        layers=layers, hook="resid_post", d_sae=d_sae, k=k, total_tokens=total_tokens, batch_size=batch_size,
        context_size=context_size, checkpoint_every=0, eval_tokens=2048, ce_eval_contexts=2, lr=2e-3,
        analyze=False)), 202)
    run = wait_for(client, f"/api/training/{r.json()['run_id']}", lambda b: b["status"] not in ("queued", "running"))
    assert run["status"] == "done", run
    per_hook = sorted(run["metrics"]["members"], key=lambda p: int(p["hook_name"].split(".")[1]))
    sae_ids = [p["sae_id"] for p in per_hook]
    sid = sae_ids[-1]
    secs["train"] = time.perf_counter() - t

    t = time.perf_counter()
    _ok(st, "analysis", client.post(f"/api/saes/{sid}/analysis", json={"n_tokens": analysis_tokens}), 202)
    a = wait_for(client, f"/api/saes/{sid}/analysis", lambda b: b["status"] not in ("running", "none"))
    assert a["status"] == "done", a
    page = _ok(st, "features", client.get(f"/api/saes/{sid}/features", params={"limit": 5, "sort": "-density"})).json()
    secs["analysis"] = time.perf_counter() - t

    t = time.perf_counter()
    con = _ok(st, "contrast", client.post(f"/api/saes/{sid}/contrast", json={
        "positive": POSITIVE, "negative": NEGATIVE, "position": "max", "top_n": 5})).json()
    feature = int(con["features"][0]["index"])
    secs["contrast"] = time.perf_counter() - t

    t = time.perf_counter()
    patch = _ok(st, "patch", client.post("/api/patches", json={
        "sae_id": sid, "features": [feature], "mode": "ablate", "enabled": False}), 201).json()
    inf = _ok(st, "inference", client.post("/api/inference", json={"text": prompts[0], "patch_ids": [patch["id"]]})).json()
    assert inf["patch_ids"] == [patch["id"]]
    secs["patch"] = time.perf_counter() - t

    t = time.perf_counter()
    prov = _ok(st, "provenance", client.get("/api/provenance", params={
        "sae_id": sid, "feature": feature, "depth": max(1, len(sae_ids) - 1), "prompt": prompts[0]})).json()
    secs["provenance"] = time.perf_counter() - t

    # PEFT: the exported adapter, reloaded by peft on a fresh base model, gives the workbench's patched logits
    from peft import PeftModel

    t = time.perf_counter()
    ex = _ok(st, "peft_export", client.get(f"/api/patches/{patch['id']}/export", params={"format": "peft"}))
    with zipfile.ZipFile(io.BytesIO(ex.content)) as zf:
        zf.extractall(tmp / "peft")
    peft_model = PeftModel.from_pretrained(base_model(), str(tmp / "peft" / patch["id"])).eval()
    lm = state.lm
    diff = change = 0.0
    for text in prompts:
        orig, ours, _, _ = state.inference.session().logits(text, [patch["id"]])
        with torch.no_grad():
            theirs = peft_model(input_ids=encode_prompt(lm, text), use_cache=False).logits[0, -1].float()
        p_ours, p_theirs = ours.float().softmax(-1), theirs.to(ours.device).softmax(-1)
        diff = max(diff, float((p_ours - p_theirs).abs().max()))
        change = max(change, float((p_ours - orig.float().softmax(-1)).abs().max()))
    del peft_model
    secs["peft"] = time.perf_counter() - t

    # SAELens: the exported folder loads in sae_lens and encodes the model's activations like the workbench
    from sae_lens import SAE

    ex = _ok(st, "saelens_export", client.get(f"/api/saes/{sid}/export"))
    with zipfile.ZipFile(io.BytesIO(ex.content)) as zf:
        zf.extractall(tmp / "saelens")
    theirs_sae = SAE.load_from_disk(str(tmp / "saelens"), device="cpu")
    ours_sae = state.saes.get(sid).sae
    hook = ours_sae.cfg.hook_name
    with torch.no_grad():
        act = run_with_cache(lm.model, encode_prompt(lm, " ".join(POSITIVE)), [hook]).cache[hook][0, 1:].float().cpu()
        enc_diff = float((ours_sae.encode(act).cpu() - theirs_sae.encode(act)).abs().max())
    return LoopResult(sae_ids, st, patch["id"], feature, diff, change, enc_diff, len(page["items"]),
                      len(prov["edges"]), secs)
