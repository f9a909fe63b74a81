"""Acceptance on the default model (SmolLM2-135M, d_model 576): a JumpReLU SAE saved by sae_lens for
blocks.6.hook_resid_post, served from a Hugging Face cache layout and a registry release, imports by release +
SAE id and encodes the model's real activations identically to sae_lens's ``SAE.from_pretrained`` (fp32)."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.activations.corpus import load_texts
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.sae.pretrained import ReleaseIndex, list_releases, load_pretrained

pytestmark = pytest.mark.integration

HOOK = "blocks.6.hook_resid_post"
REPO = "tester/smollm2-135m-saes"


def _activations(lm, n_texts: int = 12) -> torch.Tensor:
    """``[n_tokens d_model]`` at HOOK over corpus texts (position 0 dropped)."""
    rows = []
    for text in load_texts(None)[:n_texts]:
        ids = lm.tokenizer(text, return_tensors="pt", truncation=True, max_length=48).input_ids
        with torch.no_grad():
            rows.append(run_with_cache(lm.model, ids, [HOOK]).cache[HOOK][0, 1:].float())
    return torch.cat(rows)


def test_saelens_jumprelu_for_default_model_encodes_identically(default_lm, hub, tmp_path, in_saelens_registry):
    from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig

    acts = _activations(default_lm)
    fit, held_out = acts[::2], acts[1::2]
    d_in, d_sae = default_lm.d_model, 1024
    assert d_in == 576

    cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae)
    cfg.metadata.hook_name = HOOK
    cfg.metadata.model_name = default_lm.model_id
    theirs_saved = JumpReLUSAE(cfg)
    with torch.no_grad():
        w = torch.randn(d_sae, d_in)
        w = w / w.norm(dim=1, keepdim=True) * torch.empty(d_sae, 1).uniform_(0.5, 2.0)
        theirs_saved.W_dec.copy_(w)
        theirs_saved.W_enc.copy_(w.T / w.norm(dim=1) ** 2)
        theirs_saved.b_dec.copy_(fit.mean(0))
        theirs_saved.b_enc.copy_(torch.randn(d_sae) * 0.01)
        pre = (fit - fit.mean(0)) @ theirs_saved.W_enc + theirs_saved.b_enc
        theirs_saved.threshold.copy_(pre.quantile(0.9, dim=0))  # ~10% of tokens fire each latent
    folder = tmp_path / "saved"
    theirs_saved.save_model(str(folder))
    hub.publish(REPO, {"blocks.6.hook_resid_post": folder})
    entry = {"repo_id": REPO, "model": default_lm.model_id, "conversion_func": None,
             "saes": [{"id": HOOK, "path": HOOK, "neuronpedia": "smollm2-135m/6-res"}]}
    index = ReleaseIndex.load([hub.registry({"smollm2-res": entry})], include_saelens=False)
    in_saelens_registry("smollm2-res", entry)

    (rel,) = list_releases(default_lm.model_id, index=index)
    assert rel.release == "smollm2-res" and rel.saes[0].cached and rel.saes[0].d_sae == d_sae

    ours = load_pretrained("smollm2-res", HOOK, index=index)
    theirs = SAE.from_pretrained("smollm2-res", HOOK)
    assert (ours.cfg.architecture, ours.cfg.d_in, ours.layer) == ("jumprelu", 576, 6)
    with torch.no_grad():
        f_ours, f_theirs = ours.encode(held_out), theirs.encode(held_out)
        torch.testing.assert_close(f_ours, f_theirs, rtol=0, atol=1e-4)
        density = float((f_theirs > 0).float().mean())
        assert 0.02 < density < 0.3, density
        torch.testing.assert_close(ours.decode(f_ours), theirs.decode(f_theirs), rtol=1e-5, atol=1e-4)
