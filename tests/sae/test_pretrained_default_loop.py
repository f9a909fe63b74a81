"""Acceptance on the default model (SmolLM2-135M, fp32): JumpReLU SAEs saved by sae_lens for blocks 4 and 6
(resid_post), served from a Hugging Face cache layout and a registry release, import over REST, encode the
model's activations identically to sae_lens (atol 1e-4), and are analysed, patched (the PEFT export reloaded
by peft gives the workbench's logits within 1e-4) and traced (layer 6 from layer 4)."""
from __future__ import annotations

import io
import zipfile

import pytest
import torch

from interpretability_workbench.activations.corpus import load_texts
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.model.tokenize import encode_prompt

pytestmark = pytest.mark.integration

REPO = "tester/smollm2-135m-res-jumprelu"
RELEASE = "smollm2-135m-res-jumprelu"
LAYERS = (4, 6)
PROMPT = "def read(path):\n    with open(path) as f:\n        return f.read()"


def _activations(lm, hook: str, n_texts: int = 12) -> torch.Tensor:
    rows = []
    for text in load_texts(None)[:n_texts]:
        ids = encode_prompt(lm, text[:400])
        with torch.no_grad():
            rows.append(run_with_cache(lm.model, ids, [hook]).cache[hook][0, 1:].float())
    return torch.cat(rows)


def _save_jumprelu(lm, hook: str, folder, seed: int) -> None:
    """A JumpReLU SAE saved by sae_lens whose latents fire on ~10% of the model's tokens."""
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    g = torch.Generator().manual_seed(seed)
    fit = _activations(lm, hook)[::2]
    d_in, d_sae = lm.d_model, 1024
    cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae)
    cfg.metadata.hook_name = hook
    cfg.metadata.model_name = lm.model_id
    sae = JumpReLUSAE(cfg)
    with torch.no_grad():
        w = torch.randn(d_sae, d_in, generator=g)
        w = w / w.norm(dim=1, keepdim=True) * torch.empty(d_sae, 1).uniform_(0.5, 2.0, generator=g)
        sae.W_dec.copy_(w)
        sae.W_enc.copy_(w.T / w.norm(dim=1) ** 2)
        sae.b_dec.copy_(fit.mean(0))
        sae.b_enc.copy_(torch.randn(d_sae, generator=g) * 0.01)
        pre = (fit - fit.mean(0)) @ sae.W_enc + sae.b_enc
        sae.threshold.copy_(pre.quantile(0.9, dim=0))
    sae.save_model(str(folder))


def test_pretrained_jumprelu_on_the_default_model(default_lm, hub, tmp_path, in_saelens_registry):
    from fastapi.testclient import TestClient
    from peft import PeftModel
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM

    from interpretability_workbench.server.app import create_app
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    hooks = [f"blocks.{layer}.hook_resid_post" for layer in LAYERS]
    folders = {}
    for layer, hook in zip(LAYERS, hooks):
        folders[hook] = tmp_path / f"saved-{layer}"
        _save_jumprelu(default_lm, hook, folders[hook], seed=layer)
    hub.publish(REPO, folders)
    entry = {"repo_id": REPO, "model": default_lm.model_id, "conversion_func": None,
             "saes": [{"id": h, "path": h, "neuronpedia": f"smollm2-135m/{layer}-res"} for layer, h in zip(LAYERS, hooks)]}
    in_saelens_registry(RELEASE, entry)
    st = WorkbenchState(Settings(home=tmp_path / "home", model="none", device="cpu", dtype="float32",
                                 sae_registry=[str(hub.registry({RELEASE: entry}))]))
    try:
        st.model.adopt(default_lm)
        with TestClient(create_app(st.settings, st, load_model=False)) as c:
            rel = c.get("/api/saes/pretrained", params={"q": "jumprelu"}).json()
            assert [r["release"] for r in rel["releases"]] == [RELEASE]
            r = c.post("/api/saes/import-pretrained", json={"release": RELEASE, "all": True})
            assert r.status_code == 201, r.text
            sid4, sid6 = (x["id"] for x in r.json())

            held_out = _activations(default_lm, hooks[1])[1::2]
            theirs = SAE.from_pretrained(RELEASE, hooks[1])
            with torch.no_grad():
                ours_f, theirs_f = st.saes.get(sid6).sae.encode(held_out), theirs.encode(held_out)
            torch.testing.assert_close(ours_f, theirs_f, rtol=0, atol=1e-4)
            assert 0.02 < float((theirs_f > 0).float().mean()) < 0.3

            assert c.post(f"/api/saes/{sid6}/analysis", json={"n_tokens": 2032}).status_code == 202
            st.features.wait(sid6)
            status = c.get(f"/api/saes/{sid6}/analysis").json()
            assert status["status"] == "done", status
            feature = int(theirs_f.sum(0).argmax())
            detail = c.get(f"/api/saes/{sid6}/features/{feature}").json()
            assert detail["density"] > 0

            p = c.post("/api/patches", json={"sae_id": sid6, "features": [feature], "mode": "ablate",
                                             "enabled": False}).json()
            ex = c.get(f"/api/patches/{p['id']}/export", params={"format": "peft"})
            with zipfile.ZipFile(io.BytesIO(ex.content)) as zf:
                zf.extractall(tmp_path / "peft")
            folder = default_lm.model.config._name_or_path
            base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            peft_model = PeftModel.from_pretrained(base, str(tmp_path / "peft" / p["id"])).eval()
            for text in (PROMPT, "The capital of France is"):
                orig, ours, _, _ = st.inference.session().logits(text, [p["id"]])
                with torch.no_grad():
                    theirs_logits = peft_model(input_ids=encode_prompt(default_lm, text)).logits[0, -1]
                assert float((ours - theirs_logits).abs().max()) <= 1e-4
            assert float((ours - orig).abs().max()) > 1e-3

            g = c.get("/api/provenance", params={"sae_id": sid6, "feature": feature, "depth": 1, "prompt": PROMPT})
            assert g.status_code == 200, g.text
            body = g.json()
            assert {n["sae_id"] for n in body["nodes"] if n["kind"] == "feature"} == {sid4}
            assert body["validation"]["correlation"] is not None
    finally:
        st.shutdown()
        st.close()
