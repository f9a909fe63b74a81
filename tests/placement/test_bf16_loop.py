"""bf16 end to end on CPU: the tiny random Llama loaded in bfloat16 runs the whole REST loop, and each step's
numbers are checked against an independent computation with a tolerance stated per check.

Tolerances (bf16 has an 8-bit significand: unit roundoff u = 2^-8 ≈ 3.9e-3):

* PEFT round trip, next-token probabilities: ≤ 1e-3 absolute. The workbench adds float32 deltas to the
  upcast bf16 output and rounds once, as PEFT does with a float32 adapter, so the two agree bit for bit here;
  the bound leaves room for a one-ulp logit flip (≤ u·|logit|, ≲ 1e-3 in probability) on other kernels.
* SAE encode vs sae_lens on the same activations: ≤ 1e-4 (both float32).
* Ablation: the residual's remaining component along the ablated directions ≤ u (≈ 3.9e-3) of its norm —
  what is left is the rounding of the other components when the stream is stored in bf16 (≤ 1e-5 in fp32).
* Steer: resid_post moves by α·W_dec[f] within 2^-7 of the patched residual's largest entry (one bf16 ulp).
* Analysis densities: equal to an independent encode of the same bf16 activations, within 2 tokens.
* Live path (cached resid_pre, blocks from the patched layer) vs a full patched forward: ≤ 1e-2 in logits.
* Provenance: attribution vs measured ablation effect correlate ≥ 0.98.
"""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.features.service import excluded_token_ids
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.model.tokenize import encode_prompt
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

from .loop import PROMPT, run_rest_loop

U_BF16 = 2.0 ** -8
HOOK = "blocks.1.hook_resid_post"


def _sae(state, layer: int = 1, seed: int = 0, arch: str = "standard", d_sae: int = 32) -> tuple[str, SparseAutoencoder]:
    lm = state.lm
    cfg = SAEConfig(d_in=lm.d_model, d_sae=d_sae, architecture=arch, k=4 if arch == "topk" else None,
                    hook_name=f"blocks.{layer}.hook_resid_post", model_id=lm.model_id, context_size=64)
    sae = SparseAutoencoder(cfg)
    sae.reset_parameters(seed=seed)
    sid = state.saes.register(sae, source="imported")
    return sid, state.saes.get(sid).sae


def _resid(state, ids, patch_ids=()) -> torch.Tensor:
    with state.patches.using(list(patch_ids)):
        return run_with_cache(state.lm.model, ids, [HOOK]).cache[HOOK][0].float()


def test_rest_loop_on_a_bf16_tiny_llama(bf16_state, bf16_client, tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    lm = bf16_state.lm
    assert lm.dtype == torch.bfloat16 and next(lm.model.parameters()).dtype == torch.bfloat16
    res = run_rest_loop(bf16_client, bf16_state, tmp_path,
                        lambda: AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.bfloat16).eval(),
                        layers=[0, 1], d_sae=128, k=8, total_tokens=8192, batch_size=512, analysis_tokens=2048)
    assert all(200 <= s < 300 for s in res.statuses.values()), res.statuses
    assert res.max_prob_diff_peft <= 1e-3, res
    assert res.max_prob_change_patch > 1e-5, res  # the ablation does change the distribution
    assert res.max_encode_diff_saelens <= 1e-4, res
    assert res.n_analysed == 5 and res.provenance_edges > 0
    for sid in res.sae_ids:  # SAEs are float32 on the model's device whatever the model's dtype
        sae = bf16_state.saes.get(sid).sae
        assert sae.W_enc.dtype == torch.float32 and sae.W_enc.device == lm.device


def test_bf16_analysis_densities_match_an_independent_encode(bf16_state):
    sid, sae = _sae(bf16_state, arch="topk", d_sae=64, seed=3)
    bf16_state.features.analyze(sid, n_tokens=630)
    lm = bf16_state.lm
    contexts = bf16_state.features.analysis_contexts(lm, sae, None, 630)
    counts = torch.zeros(sae.cfg.d_sae)
    special = torch.tensor(excluded_token_ids(lm.tokenizer), dtype=torch.long)
    n = 0
    for i in range(0, contexts.shape[0], 16):  # the analysis's batch of contexts
        a = run_with_cache(lm.model, contexts[i: i + 16].to(lm.device), [sae.cfg.hook_name]).cache[sae.cfg.hook_name]
        assert a.dtype == torch.bfloat16
        keep = ~torch.isin(contexts[i: i + 16, 1:].reshape(-1), special)  # special tokens are never counted
        f = sae.encode(a[:, 1:].reshape(-1, a.shape[-1]).float())[keep.to(a.device)]
        counts += (f > 0).sum(0).float().cpu()
        n += f.shape[0]
    page = bf16_state.features.list_features(sid, offset=0, limit=64, sort="index")
    got = torch.tensor([row["density"] for row in page["items"]])
    assert torch.allclose(got, counts / n, atol=2 / n, rtol=0)


def test_bf16_ablate_and_steer_act_on_the_residual_within_bf16_rounding(bf16_state):
    sid, sae = _sae(bf16_state, seed=5)
    ids = encode_prompt(bf16_state.lm, PROMPT)
    x0 = _resid(bf16_state, ids)
    ablate = bf16_state.patches.create(sae_id=sid, features=[3, 7], mode="ablate", enabled=False)
    Q, _ = torch.linalg.qr(sae.W_dec[[3, 7]].float().T)  # [d_model 2]
    x1 = _resid(bf16_state, ids, [ablate.id])
    before = (x0 @ Q).norm(dim=1) / x0.norm(dim=1)
    after = (x1 @ Q).norm(dim=1) / x1.norm(dim=1)
    assert float(before.min()) > 5 * U_BF16  # the component was there
    assert float(after.max()) <= U_BF16
    steer = bf16_state.patches.create(sae_id=sid, features=[3], mode="steer", strength=4.0, enabled=False)
    x2 = _resid(bf16_state, ids, [steer.id])
    err = (x2 - x0 - 4.0 * sae.W_dec[3].float()).abs().max()
    assert float(err) <= 2.0 ** -7 * float(x2.abs().max())


def test_bf16_live_logits_equal_a_full_patched_forward(bf16_state):
    sid, _ = _sae(bf16_state, seed=6)
    p = bf16_state.patches.create(sae_id=sid, features=[2], mode="steer", strength=6.0, enabled=False)
    orig, patched, _, layer = bf16_state.inference.session().logits(PROMPT, [p.id])
    assert layer == 1
    with bf16_state.patches.using([p.id]), torch.no_grad():
        full = bf16_state.lm.model(input_ids=encode_prompt(bf16_state.lm, PROMPT), use_cache=False).logits[0, -1]
    assert full.dtype == torch.bfloat16
    assert float((patched - full.float()).abs().max()) <= 1e-2
    assert float((patched - orig).abs().max()) > 0.1


@pytest.mark.parametrize("depth", [1])
def test_bf16_provenance_attribution_predicts_ablation(bf16_state, depth):
    target, _ = _sae(bf16_state, layer=1, seed=0)
    _sae(bf16_state, layer=0, seed=1)
    g = bf16_state.provenance.build(target, 3, depth=depth, prompt=PROMPT)
    assert g.validation is not None and len(g.validation.edges) >= 3
    assert g.validation.correlation is not None and g.validation.correlation >= 0.98
    assert g.downstream_logits.positive and all(n.activation is not None for n in g.nodes if n.kind != "logit")
