"""GPU live patch latency at the Llama-3.1-8B shape (random bf16 weights made on the GPU): a 128-token prompt,
a steer patch at the middle layer (blocks.16.hook_resid_post), and the server's compute per strength change —
what the WebSocket ``set_strength`` handler does: change the scaling in place (``PatchManager.set_strength``)
and compare original vs patched next tokens (``LiveSession.compare``: cached original logits and resid_pre,
blocks 16..31 rerun, last position projected). Baseline in the same run: one full forward of the prompt.

Targets: p95 <= 50 ms, and p95 <= 0.6x one full forward. The last line is the ratio.

    python bench/gpu_patch_latency.py
    python bench/gpu_patch_latency.py --device cpu --shape tiny --rounds 10      # smoke
"""
from __future__ import annotations

import argparse
import json

import torch

from gpu_common import (default_device, device_name, median, pct, prompt_text, random_llama, random_sae, sync, timed,
                        workbench_state)
from interpretability_workbench.model.tokenize import encode_prompt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=default_device())
    ap.add_argument("--shape", default="llama-3.1-8b")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    lm = random_llama(a.shape, a.device, torch.bfloat16)
    layer = lm.n_layers // 2
    st = workbench_state(lm)
    sid = st.saes.register(random_sae(lm, layer, 4096, k=32).cpu(), source="imported")
    patch = st.patches.create(sae_id=sid, features=[0], mode="steer", strength=0.0)
    text = prompt_text(lm, a.tokens)
    session = st.inference.session()
    first = session.compare(text, 10, [patch.id])
    print(f"device {device_name(lm.device)}; {a.shape} bf16 (built in {lm.load_seconds:.1f} s), prompt "
          f"{first.n_tokens} tokens, steer patch at layer {layer} (patched forward from block {first.from_layer})")

    strengths = iter([(-1) ** i * (1 + i % 7) for i in range(10 ** 6)])

    def change() -> None:
        st.patches.set_strength(patch.id, float(next(strengths)))
        c = session.compare(text, 10, [patch.id])
        assert c.from_layer == layer

    ours = timed(change, lm.device, repeats=a.rounds, warmup=3)
    ids = encode_prompt(lm, text)  # the prompt exactly as the live path tokenises it

    def full() -> None:
        with torch.no_grad():
            lm.model(input_ids=ids, use_cache=False).logits[0, -1].float()

    base = timed(full, lm.device, repeats=max(10, a.rounds // 3), warmup=3)
    sync(lm.device)
    p50, p95, f = pct(ours, 50) * 1000, pct(ours, 95) * 1000, median(base) * 1000
    print(f"strength change (server compute): p50 {p50:.1f} ms, p95 {p95:.1f} ms (target <= 50 ms)")
    print(f"one full forward: median {f:.1f} ms")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"device": device_name(lm.device), "shape": a.shape, "p50_ms": p50, "p95_ms": p95,
                       "full_forward_ms": f, "ratio": p95 / f}, fh, indent=2)
    print(f"ratio: p95 / full forward {p95 / f:.2f} (target <= 0.6)")


if __name__ == "__main__":
    main()
