"""CE loss recovered with every MLP replaced by its transcoder."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interpretability_workbench.circuits.replacement import replacement_ce, replacement_logits
from interpretability_workbench.errors import Invalid
from interpretability_workbench.model.hook_names import hook_name
from interpretability_workbench.model.hooks import hooks


def _ce(logits: torch.Tensor, ids: torch.Tensor) -> float:
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)))


def test_ce_recovered_against_independent_computations(tiny_lm, transcoders):
    model = tiny_lm.model
    ids = torch.randint(1, tiny_lm.vocab_size, (3, 12))
    r = replacement_ce(model, transcoders, ids)
    with torch.no_grad():
        clean = model(input_ids=ids).logits
        zero = {hook_name(l, "mlp_out"): (lambda a: torch.zeros_like(a)) for l in range(tiny_lm.n_layers)}
        with hooks(model, zero):
            ablated = model(input_ids=ids).logits
    assert r.clean == pytest.approx(_ce(clean, ids), rel=1e-5)
    assert r.replaced == pytest.approx(_ce(replacement_logits(model, transcoders, ids), ids), rel=1e-5)
    assert r.ablated == pytest.approx(_ce(ablated, ids), rel=1e-5)
    assert r.recovered == pytest.approx((r.ablated - r.replaced) / (r.ablated - r.clean))


def test_padding_is_ignored(tiny_lm, transcoders):
    ids = torch.randint(1, tiny_lm.vocab_size, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 9), torch.zeros(1, 4)], 1).long()
    a = replacement_ce(tiny_lm.model, transcoders, ids)
    b = replacement_ce(tiny_lm.model, transcoders, padded, attention_mask=mask)
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=1e-5)
    with pytest.raises(Invalid):
        replacement_ce(tiny_lm.model, transcoders, ids[0])
