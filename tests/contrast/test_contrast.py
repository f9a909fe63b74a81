"""Contrast on a tiny Llama with a planted behaviour: the trigger token ' return' writes a direction d into
the residual stream, and the unembedding turns d into the target token. A hand-built SAE feature reads d."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

POSITIVE = ["Open the file and return", "If the value is missing, return", "Compute the sum and return",
            "Parse the header, then return", "Close the socket and return", "Read one line and return"]
NEGATIVE = ["Open the file and read", "If the value is missing, raise", "Compute the sum of the list",
            "Parse the header of the message", "Close the socket when done", "Read one line from the stream"]
PLANTED = 5


@pytest.fixture
def planted(state):
    lm = state.lm
    tok = lm.tokenizer
    trigger = tok(" return", add_special_tokens=False)["input_ids"]
    target = tok(" the", add_special_tokens=False)["input_ids"][0]
    assert len(trigger) == 1
    for t in POSITIVE:
        assert tok(t)["input_ids"][-1] == trigger[0]
    for t in NEGATIVE:
        assert trigger[0] not in tok(t)["input_ids"]
    g = torch.Generator().manual_seed(7)
    d = torch.randn(lm.d_model, generator=g)
    d /= d.norm()
    m = lm.model
    with torch.no_grad():
        m.model.embed_tokens.weight[trigger[0]] += 3.0 * d
        m.lm_head.weight[target] += 1.2 * d
    cfg = SAEConfig(d_in=lm.d_model, d_sae=32, architecture="standard", k=None,
                    hook_name="blocks.1.hook_resid_post", model_id=lm.model_id)
    sae = SparseAutoencoder(cfg)
    sae.reset_parameters(seed=3)
    with torch.no_grad():
        sae.W_dec[PLANTED] = d
        sae.W_enc[:, PLANTED] = d
        sae.b_enc[PLANTED] = -1.0  # fires only on a strong d component
    sid = state.saes.register(sae, source="imported")
    return sid, target


def test_contrast_ranks_planted_feature_and_group_ablation_removes_behaviour(client, state, planted):
    sid, target = planted
    r = client.post(f"/api/saes/{sid}/contrast", json={"positive": POSITIVE, "negative": NEGATIVE,
                                                       "position": "last", "top_n": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["features"][0]
    assert top["index"] == PLANTED
    assert top["positive_rate"] == 1.0 and top["negative_rate"] == 0.0 and top["effect_size"] > 3
    assert top["label"] is None and top["top_tokens"] == []
    group = [f["index"] for f in body["features"] if f["effect_size"] > 1.0][:3]
    assert PLANTED in group
    p = client.post(f"/api/saes/{sid}/contrast/patch", json={"features": group, "mode": "ablate"})
    assert p.status_code == 201, p.text
    pid = p.json()["id"]
    # made on the Contrast page: says so, and stays off for the live model until the user enables it
    assert p.json()["origin"] == "contrast" and p.json()["enabled"] is False
    assert pid not in state.patches.resolve_ids(None)
    pos = client.post(f"/api/patches/{pid}/evaluate", json={"texts": POSITIVE, "target_tokens": [target]}).json()
    neg = client.post(f"/api/patches/{pid}/evaluate", json={"texts": NEGATIVE, "target_tokens": [" the"]}).json()
    assert neg["target_ids"] == [target]
    assert pos["mean_before"] > 0.5 and pos["mean_after"] < 0.5 * pos["mean_before"]
    assert abs(neg["mean_after"] - neg["mean_before"]) < 0.02
    assert all(abs(x["after"] - x["before"]) < 0.05 for x in neg["results"])


def test_contrast_positions_and_errors(state, planted):
    sid, _ = planted
    res = state.contrast.contrast(sid, POSITIVE[:3], NEGATIVE[:3], "max", top_n=3)
    assert res.features[0].index == PLANTED and len(res.features) == 3
    res = state.contrast.contrast(sid, POSITIVE[:3], NEGATIVE[:3], "all", top_n=32)
    assert res.n_positive > 3  # every token is a sample: the trigger is one token of each text
    planted = next(f for f in res.features if f.index == PLANTED)
    assert 0 < planted.positive_rate < 0.5 and planted.negative_rate == 0.0
    from interpretability_workbench.errors import Invalid, NotFound

    with pytest.raises(NotFound):
        state.contrast.contrast("sae_nope", POSITIVE, NEGATIVE)
    with pytest.raises(Invalid):
        state.contrast.contrast(sid, [], NEGATIVE)
