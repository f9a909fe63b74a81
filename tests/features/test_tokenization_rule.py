"""One tokenisation rule: /activations, /contrast and provenance see the same activations for the same text,
and they are what a plain forward of BOS + the text's tokens gives (position 0 never reported)."""
from __future__ import annotations

import torch

from interpretability_workbench.model.hooks import run_with_cache

from .conftest import HOOK

TEXT = "Return the sum of the values in the list."
OTHER = "Open the file for reading."


def _independent(lm, sae, text: str) -> torch.Tensor:
    """``[n_tokens d_sae]`` by hand: BOS, then the tokenizer's ids without its special tokens; drop position 0."""
    tok = lm.tokenizer
    ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    res = run_with_cache(lm.model, torch.tensor([ids]), [HOOK])
    return sae.encode(res.cache[HOOK][0, 1:].float())


def test_activations_contrast_and_provenance_agree(client, state, make_sae):
    sae_id, sae = make_sae(architecture="standard", d_sae=64, seed=11)
    lm = state.require_model()
    want = _independent(lm, sae, TEXT)  # [n d_sae]
    body = client.post(f"/api/saes/{sae_id}/activations", json={"text": TEXT, "top_k": 3}).json()
    assert body["token_ids"] == lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    got = {f["index"]: f["activations"] for f in body["features"]}
    assert got, "some feature fires on the text"
    for i, acts in got.items():
        torch.testing.assert_close(torch.tensor(acts), want[:, i], atol=1e-5, rtol=0)

    for position, reduce in (("last", lambda v: v[-1]), ("max", lambda v: v.max(0).values)):
        r = client.post(f"/api/saes/{sae_id}/contrast", json={"positive": [TEXT], "negative": [OTHER],
                                                              "position": position, "top_n": 64}).json()
        ref = reduce(want)
        for f in r["features"]:
            assert abs(f["mean_positive"] - float(ref[f["index"]])) < 1e-5, (position, f["index"])

    up_id, _ = make_sae(architecture="standard", d_sae=32, seed=12, hook="blocks.0.hook_resid_post")
    feature = int(want.max(0).values.argmax())
    r = client.get("/api/provenance", params={"sae_id": sae_id, "feature": feature, "depth": 1, "prompt": TEXT,
                                              "upstream": up_id, "validate": 0})
    assert r.status_code == 200, r.text
    target = next(n for n in r.json()["nodes"] if n["kind"] == "target")
    assert abs(target["activation"] - float(want[:, feature].max())) < 1e-4
    assert target["position"] - 1 == int(want[:, feature].argmax())  # positions count the BOS
