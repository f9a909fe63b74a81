"""Steer and clamp strengths in units of the features' typical activation (patches/units.py)."""
from __future__ import annotations

import math

import pytest
import torch

from interpretability_workbench.errors import Invalid
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.model.tokenize import encode_text
from interpretability_workbench.activations.corpus import load_texts
from interpretability_workbench.store.features import AnalysedFeature

from .conftest import PROMPTS, make_sae, peft_roundtrip_diff


def _analysed(state, sae_id, means: dict[int, float]) -> None:
    state.features.repo.upsert_analysed(sae_id, [AnalysedFeature(i, "x", 0.1, 2 * m, m, [], {})
                                                 for i, m in means.items()])


def test_typical_activation_unit_comes_from_the_analysis_and_equals_absolute(state):
    sid, _ = make_sae(state, seed=4)
    _analysed(state, sid, {2: 3.0, 5: 5.0})
    typ = state.patches.create(sae_id=sid, features=[2, 5], mode="steer", strength=2.5,
                               strength_unit="typical_activation", origin="patch console")
    assert typ.unit_source == "analysis" and math.isclose(typ.unit_scale, 4.0)
    assert math.isclose(typ.absolute_strength, 10.0) and typ.extra["origin"] == "patch console"
    ab = state.patches.create(sae_id=sid, features=[2, 5], mode="steer", strength=10.0)
    for text in PROMPTS:
        _, p_typ, _, _ = state.inference.session().logits(text, [typ.id])
        orig, p_abs, _, _ = state.inference.session().logits(text, [ab.id])
        torch.testing.assert_close(p_typ, p_abs, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(orig, p_typ)
    # the live slider moves in units too: strength 1 is one typical activation
    state.patches.set_strength(typ.id, 1.0)
    state.patches.update(ab.id, strength=4.0)
    _, a, _, _ = state.inference.session().logits(PROMPTS[0], [typ.id])
    _, b, _, _ = state.inference.session().logits(PROMPTS[0], [ab.id])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_without_analysis_the_unit_is_the_residual_norm(state):
    sid, sae = make_sae(state, seed=6)
    p = state.patches.create(sae_id=sid, features=[1], mode="clamp", strength=0.5,
                             strength_unit="typical_activation")
    assert p.unit_source == "residual_norm"
    # independent: mean residual norm at the hook on the built-in corpus's first context, over the decoder norm
    lm = state.lm
    ids = encode_text(lm, " ".join(load_texts(None)[:4])).ids[:, :128]
    with state.patches.original:
        x = run_with_cache(lm.model, ids, [sae.cfg.hook_name]).cache[sae.cfg.hook_name][0, 1:].float()
    expected = float(x.norm(dim=-1).mean()) / float(sae.W_dec[1].norm())
    assert math.isclose(p.unit_scale, expected, rel_tol=1e-5)


def test_units_only_for_steer_and_clamp(state, sae_id):
    with pytest.raises(Invalid, match="strength_unit"):
        state.patches.create(sae_id=sae_id, features=[1], mode="ablate", strength_unit="typical_activation")


def test_peft_export_bakes_in_the_absolute_strength(state, tiny_llama_dir, tmp_path):
    sid, _ = make_sae(state, seed=8)
    _analysed(state, sid, {3: 2.0})
    p = state.patches.create(sae_id=sid, features=[3], mode="steer", strength=3.0,
                             strength_unit="typical_activation")
    diff, moved = peft_roundtrip_diff(state, p.id, tiny_llama_dir, tmp_path)
    assert moved > 1e-3 and diff < 1e-4
    # native export and import keep the unit and its scale
    ex = state.patch_transfer.export(p.id, "native")
    again = state.patch_transfer.import_zip(ex.data)
    assert again.strength_unit == "typical_activation" and math.isclose(again.unit_scale, 2.0)
    assert math.isclose(again.absolute_strength, 6.0)


def test_rest_create_reports_units(state, sae_id):
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app

    with TestClient(create_app(state.settings, state, load_model=False)) as c:
        r = c.post("/api/patches", json={"sae_id": sae_id, "features": [1], "mode": "steer", "strength": 2,
                                         "strength_unit": "typical_activation", "origin": "feature page"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["strength_unit"] == "typical_activation" and body["origin"] == "feature page"
        assert math.isclose(body["absolute_strength"], 2 * body["unit_scale"])
        old = c.post("/api/patches", json={"sae_id": sae_id, "features": [1], "mode": "steer", "strength": 2}).json()
        assert old["strength_unit"] == "absolute" and old["absolute_strength"] == 2 and old["origin"] is None
