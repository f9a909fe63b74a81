"""Provenance on the embedded default model (SmolLM2-135M) with three random-unit SAEs."""
from __future__ import annotations

import math

import pytest
import torch

from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.provenance.types import GraphOptions

from .conftest import make_sae

PROMPT = "def count_items(container):\n    \"\"\"Return the number of items in the container.\"\"\"\n    return len("


@pytest.mark.integration
def test_default_model_depth_two_correlation(default_lm, tmp_path):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    state = WorkbenchState(Settings(home=tmp_path / "home", model="none", device="cpu", dtype="float32"))
    try:
        state.model.adopt(default_lm)
        ids = [state.saes.register(make_sae(default_lm, f"blocks.{layer}.hook_resid_post", 1024, seed=layer,
                                            arch="topk", k=32), source="imported") for layer in (2, 4, 6)]
        sae = state.saes.get(ids[2]).sae
        toks = torch.tensor([[default_lm.tokenizer.bos_token_id] + default_lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            x = run_with_cache(default_lm.model, toks, ["blocks.6.hook_resid_post"]).cache["blocks.6.hook_resid_post"][0]
            feature = int(sae.encode(x)[1:].sum(0).argmax())
        g = state.provenance.build(ids[2], feature, depth=2, prompt=PROMPT, options=GraphOptions(top_k=4, validate=10))
        assert {n.layer for n in g.nodes if n.kind != "logit"} == {2, 4, 6}
        v = g.validation
        pairs = ", ".join(f"{c.predicted:+.3g}/{c.actual:+.3g}" for c in v.edges)
        print(f"\ndefault model, depth 2, {len(v.edges)} validated edges: correlation {v.correlation}; "
              f"predicted/actual: {pairs}")
        assert len(v.edges) >= 2
        assert v.correlation is not None and math.isfinite(v.correlation)
    finally:
        state.model.lm = None
        state.close()
