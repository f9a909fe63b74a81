"""Real shapes on the GPU: random Llama-3.2-1B and Llama-3.1-8B configurations in bf16, weights initialised on
the GPU. Per shape: SAEs at the middle layers (float32 on the GPU), analysis, per-text activations, contrast,
a steer and an ablate patch (live path vs a full patched forward), and a provenance graph with validation.
Tolerances: live vs full forward logits within 2^-6 of the largest logit (bf16, rerun blocks); SAEs and
analysis statistics on the model's device; peak memory within weights + SAEs + 8 GiB."""
from __future__ import annotations

import gc

import pytest
import torch

from gpu_common import random_llama, random_sae, workbench_state

pytestmark = pytest.mark.gpu

PROMPT = "Return the number of items in the container, or raise an error when it is empty."


@pytest.mark.parametrize("shape,d_sae", [("llama-3.2-1b", 16_384), ("llama-3.1-8b", 16_384)])
def test_real_shape_loop(shape, d_sae):
    from interpretability_workbench.model.tokenize import encode_prompt

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    lm = random_llama(shape, "cuda", torch.bfloat16)
    st = workbench_state(lm)
    try:
        mid = lm.n_layers // 2
        ids = [st.saes.register(random_sae(lm, layer, d_sae, k=64, seed=layer).cpu(), source="imported")
               for layer in (mid - 2, mid)]
        up, target = ids
        sae = st.saes.get(target).sae
        assert sae.W_enc.device == lm.device and sae.W_enc.dtype == torch.float32
        summary = st.features.analyze(target, n_tokens=8192)
        assert summary["n_tokens"] >= 8000 and summary["d_sae"] == d_sae
        text = st.features.activations(target, PROMPT, top_k=5)
        assert text.per_token and all(len(row) <= 5 for row in text.per_token)
        con = st.contrast.contrast(target, [PROMPT, "return x"], ["The module", "A class"], "max", 5)
        assert len(con.features) == 5
        weights_bytes = sum(p.numel() * p.element_size() for p in lm.model.parameters())
        for mode, strength in (("steer", 8.0), ("ablate", 1.0)):
            feat = int(torch.tensor([r[0]["index"] for r in text.per_token if r]).mode().values)
            p = st.patches.create(sae_id=target, features=[feat], mode=mode, strength=strength, enabled=False)
            orig, patched, _, layer = st.inference.session().logits(PROMPT, [p.id])
            with st.patches.using([p.id]), torch.no_grad():
                full = lm.model(input_ids=encode_prompt(lm, PROMPT), use_cache=False).logits[0, -1].float()
            assert float((patched - full).abs().max()) <= 2 ** -6 * float(full.abs().max()), mode
            if mode == "steer":
                assert layer == mid and float((patched - orig).abs().max()) > 0
        g = st.provenance.build(target, 0, depth=1, prompt=PROMPT, upstream=[up])
        assert g.validation is not None and g.downstream_logits.positive
        peak = torch.cuda.max_memory_allocated(lm.device)
        sae_bytes = 2 * 2 * d_sae * lm.d_model * 4
        assert peak <= weights_bytes + sae_bytes + (8 << 30), (peak, weights_bytes)
    finally:
        st.shutdown()
        st.close()
        del st, lm
        gc.collect()
        torch.cuda.empty_cache()
