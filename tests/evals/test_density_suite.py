"""Density histogram (against the training metrics' own histogram and a hand count) and the per-SAE suite."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.activations.corpus import load_texts, make_contexts
from interpretability_workbench.errors import BadRequest
from interpretability_workbench.evals.absorption import AbsorptionConfig
from interpretability_workbench.evals.density import density_from_activations, density_from_counts, density_histogram
from interpretability_workbench.evals.sparse_probing import SparseProbingConfig
from interpretability_workbench.evals.suite import compare, evaluate_sae
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder
from interpretability_workbench.training.evaluate import DENSITY_BINS, HeldOutMetrics

HOOK = "blocks.1.hook_resid_post"


def _sae(d_in: int, d_sae: int = 128, k: int = 4, seed: int = 0) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, k=k, hook_name=HOOK))
    sae.reset_parameters(seed=seed)
    return sae


def test_density_counts_known_answer() -> None:
    fired = torch.tensor([0, 0, 1, 10, 100, 1000, 600])
    r = density_from_counts(fired, 1000)
    assert r.n_tokens == 1000 and sum(r.counts) == 7 and r.log10_density_edges == DENSITY_BINS
    assert r.counts[0] == 2  # never fired: first bin
    assert r.dead_fraction == pytest.approx(2 / 7) and r.dense_fraction == pytest.approx(2 / 7)
    assert r.median_log10_density == pytest.approx(-1.0)  # densities 1e-3, 1e-2, 1e-1, 0.6, 1
    with pytest.raises(BadRequest):
        density_from_counts(fired, 0)


def test_density_matches_training_metrics_histogram() -> None:
    sae = _sae(32, 96, 3)
    x = torch.randn(5000, 32) * torch.linspace(0.1, 3, 32)
    r = density_from_activations(sae, x, batch=700)
    with torch.no_grad():
        density = (sae.encode(x) > 0).double().mean(0)
    ref = HeldOutMetrics(0.0, 1.0, 0.0, 3.0, 5000, density).histogram()
    assert r.counts == [int(c) for c in ref["counts"]]
    assert r.dead_fraction == pytest.approx(float((density == 0).double().mean()))


def test_density_on_the_tiny_model(tiny_lm) -> None:
    contexts = make_contexts(tiny_lm.tokenizer, load_texts(None)[-60:], context_size=32, max_contexts=20)
    sae = _sae(tiny_lm.d_model)
    r = density_histogram(tiny_lm, sae, contexts, n_tokens=400, batch_size=8)
    assert r.n_tokens == 400 and sum(r.counts) == 128
    # the same number from activations collected independently
    from interpretability_workbench.model.hooks import run_with_cache
    acts = run_with_cache(tiny_lm.model, contexts, [HOOK]).cache[HOOK][:, 1:].reshape(-1, tiny_lm.d_model)[:400]
    assert density_from_activations(sae, acts).counts == r.counts


def test_suite_and_side_by_side(tiny_lm) -> None:
    texts = load_texts(None)[-120:]
    contexts = make_contexts(tiny_lm.tokenizer, texts, context_size=32, max_contexts=10)
    lock = __import__("threading").RLock()
    evs = {}
    for sid, (d_sae, k) in {"narrow": (64, 4), "wide": (256, 8)}.items():
        evs[sid] = evaluate_sae(tiny_lm, _sae(tiny_lm.d_model, d_sae, k), texts=texts, contexts=contexts,
                                absorption_cfg=AbsorptionConfig(min_probe_f1=0.0, max_k=2),
                                probing_cfg=SparseProbingConfig(max_docs=120, max_per_class=60, ks=(1, 2)),
                                density_tokens=200, lock=lock)
    rows = compare(evs)
    assert [r["sae_id"] for r in rows] == ["narrow", "wide"] and rows[1]["d_sae"] == 256
    assert rows[0].keys() == rows[1].keys()
    for r in rows:
        for key in ("absorption_fraction", "full_absorption", "k1_probe_accuracy", "k2_probe_accuracy",
                    "raw_probe_accuracy", "dead_fraction"):
            assert r[key] is not None and 0.0 <= r[key] <= 1.0, key
    d = evs["wide"].to_dict()
    assert d["density"]["n_tokens"] == 200 and d["summary"] == evs["wide"].summary()
    only = evaluate_sae(tiny_lm, _sae(tiny_lm.d_model), texts=texts, contexts=contexts, which=("density",),
                        density_tokens=100)
    assert only.absorption is None and only.summary()["absorption_fraction"] is None
    with pytest.raises(BadRequest):
        evaluate_sae(tiny_lm, _sae(tiny_lm.d_model), texts=texts, contexts=contexts, which=("nope",))
