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


@pytest.mark.integration
def test_trained_saes_attribution_matches_ablation(default_lm, tmp_path):
    """SAEs trained in the test at layers 2, 4 and 6 of the default model: for three features that fire on
    the prompt, each depth-2 graph's attributions agree with the ablation effects measured in the real model
    (predicted vs actual correlation >= 0.9 over >= 8 edges)."""
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState
    from interpretability_workbench.training.config import TrainingConfig

    home = tmp_path / "home"
    home.mkdir()
    state = WorkbenchState(Settings(home=home, model="none", device="cpu", dtype="float32"))
    try:
        state.model.adopt(default_lm)
        hooks = [f"blocks.{layer}.hook_resid_post" for layer in (2, 4, 6)]
        cfg = TrainingConfig(hook_names=hooks, d_sae=1536, k=24, total_tokens=49_152, batch_size=1024,
                             buffer_tokens=8192, lr=1e-3, eval_tokens=2048, ce_eval_contexts=0, checkpoint_every=0,
                             analyze=False, accelerator="cpu")
        run = state.training.wait(state.training.start(cfg), timeout=1500)
        assert run.status == "done", run.error
        by_hook = {p["hook_name"]: p["sae_id"] for p in run.metrics["members"]}
        target_id = by_hook[hooks[2]]
        sae = state.saes.get(target_id).sae
        toks = torch.tensor([[default_lm.tokenizer.bos_token_id]
                             + default_lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            x = run_with_cache(default_lm.model, toks, [hooks[2]]).cache[hooks[2]][0]
            acts = sae.encode(x)[1:]  # [pos d_sae], the sink left out
        features = acts.max(0).values.topk(3).indices.tolist()
        report = []
        for feature in features:
            g = state.provenance.build(target_id, feature, depth=2, prompt=PROMPT,
                                       upstream=[by_hook[hooks[1]], by_hook[hooks[0]]],
                                       options=GraphOptions(top_k=5, max_nodes=40, validate=12))
            v = g.validation
            assert {n.layer for n in g.nodes if n.kind != "logit"} == {2, 4, 6}
            report.append((feature, len(v.edges), v.correlation))
            assert len(v.edges) >= 8, report
            assert v.correlation is not None and v.correlation >= 0.9, report
        print("\ntrained SAEs, depth 2 (feature, validated edges, correlation):", report)
    finally:
        state.shutdown()
        state.model.lm = None
        state.close()
