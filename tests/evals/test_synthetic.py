"""Synthetic ground truth: the generator plants what it says, matching scores known answers, our TopK trainer
recovers planted features (MCC >= 0.9) like the dense reference, and the check fails when training is broken."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.errors import Invalid
from interpretability_workbench.evals.synthetic import (SyntheticTrainConfig, synthetic_ground_truth,
                                                        train_dense_reference, train_topk)
from interpretability_workbench.evals.synthetic_data import SyntheticConfig, generate, match_features
from interpretability_workbench.training import objectives

BAR = 0.9


@pytest.fixture
def one_thread():
    """Tiny matmuls: one BLAS thread avoids contention on a shared CPU (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_generator_plants_power_law_correlated_features() -> None:
    cfg = SyntheticConfig(d_in=16, n_features=32, mean_l0=3.0, alpha=0.8, group_size=4, rho=0.6, n_tokens=200_000,
                          noise_std=0.02, offset_norm=2.0, seed=5)
    d = generate(cfg)
    assert d.x.shape == (200_000, 16) and d.codes.shape == (200_000, 32)
    torch.testing.assert_close(d.features.norm(dim=1), torch.ones(32))
    assert abs(float(d.offset.norm()) - 2.0) < 1e-5
    # marginal firing frequencies are the power law, scaled to mean_l0
    p = cfg.firing_probabilities()
    assert abs(float(p.sum()) - 3.0) < 1e-9
    ratio = p[0] / p[15]
    assert abs(float(ratio) - 16 ** 0.8) < 1e-6
    freq = (d.codes > 0).double().mean(0)
    torch.testing.assert_close(freq, p, atol=0.006, rtol=0.05)
    # x is exactly codes @ features + offset + noise of the stated size
    resid = d.x - d.codes @ d.features - d.offset
    assert abs(float(resid.std()) - 0.02) < 0.001
    # magnitudes within the stated range
    on = d.codes[d.codes > 0]
    assert float(on.min()) >= 0.5 and float(on.max()) <= 1.5
    # firing correlates within a group, not across groups
    fired = (d.codes > 0).double()
    c = torch.corrcoef(fired.T)
    same = torch.block_diag(*[torch.ones(4, 4)] * 8).bool() & ~torch.eye(32, dtype=torch.bool)
    other = ~torch.block_diag(*[torch.ones(4, 4)] * 8).bool()
    assert float(c[same].mean()) > 0.1 and abs(float(c[other].mean())) < 0.01
    # reproducible, and the planted features differ from an SAE initialised with the same small seed
    assert torch.equal(generate(cfg).x, d.x)
    init = torch.randn(32, 16, generator=torch.Generator().manual_seed(5))
    assert match_features(d.features, init).mcc < 0.6


def test_match_features_known_answers() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(20, 12, generator=g)
    perm = torch.randperm(20, generator=g)
    m = match_features(truth, truth[perm] * 3.0)  # permuted, rescaled: a perfect recovery
    assert m.mcc == pytest.approx(1.0) and m.f1 == pytest.approx(1.0)
    assert torch.equal(perm[m.assignment], torch.arange(20))
    m = match_features(truth, -truth)  # opposite signs recover nothing (only chance alignments remain)
    assert m.mcc < 0.6 and m.f1 == 0.0 and float(m.matched_cos.min()) > -0.5
    # two of twenty replaced by random directions; one extra dead latent does not hurt precision
    learned = torch.cat([truth[:18], torch.randn(3, 12, generator=g)])
    live = torch.tensor([True] * 20 + [False])
    m = match_features(truth, learned, live=live)
    assert m.recall == pytest.approx(18 / 20) and m.precision == pytest.approx(18 / 20)
    t = truth / truth.norm(dim=1, keepdim=True)
    u = learned / learned.norm(dim=1, keepdim=True)
    assert m.mmcs == pytest.approx(float((t @ u.T).max(1).values.mean()), abs=1e-6)
    # fewer latents than true features: unmatched features count 0 in the MCC
    m = match_features(truth, truth[:10])
    assert m.mcc == pytest.approx(0.5) and (m.assignment[10:] == -1).all()
    with pytest.raises(Invalid):
        match_features(truth, torch.randn(5, 7))


def test_our_trainer_recovers_planted_features_like_the_dense_reference(one_thread) -> None:
    r = synthetic_ground_truth(SyntheticConfig(seed=0), SyntheticTrainConfig(seed=0))
    assert abs(r.true_mean_l0 - 3.0) < 0.1
    assert r.mcc_at_init < 0.5  # training, not the initialisation, finds the features
    assert r.ours.mcc >= BAR and r.ours.recall >= 0.9 and r.ours.f1 >= 0.8
    assert r.reference is not None and r.reference.mcc >= BAR
    assert abs(r.ours.mcc - r.reference.mcc) < 0.02  # same objective, same data, same init
    assert r.ours.fvu < 0.2 and r.ours.l0 <= 4.0 + 1e-6
    d = r.to_dict()
    assert d["ours"]["name"] == "ours" and d["reference"]["name"] == "dense_reference"
    assert d["data"]["n_features"] == 64 and d["train"]["k"] == 4


def test_check_fails_when_the_decoder_does_not_learn(one_thread, monkeypatch) -> None:
    """A sparse-decode backward that drops the decoder gradient: MCC stays near the initial one."""
    real = objectives.sparse_decode
    monkeypatch.setattr(objectives, "sparse_decode", lambda idx, acts, W: real(idx, acts, W.detach()))
    r = synthetic_ground_truth(SyntheticConfig(seed=0), SyntheticTrainConfig(seed=0), reference=False)
    assert r.ours.mcc < BAR
    assert r.ours.mcc < r.mcc_at_init + 0.1


def test_check_fails_when_the_encoder_does_not_learn(one_thread, monkeypatch) -> None:
    """A sparse TopK-encode backward that drops the encoder weight gradient."""
    real = objectives.topk_encode
    monkeypatch.setattr(objectives, "topk_encode", lambda x, W, b, *a: real(x, W.detach(), b, *a))
    r = synthetic_ground_truth(SyntheticConfig(seed=0), SyntheticTrainConfig(seed=0), reference=False)
    assert r.ours.mcc < BAR


def test_trainers_take_the_same_first_step() -> None:
    """One batch, one step: our sparse step and the dense reference give the same weights."""
    d = generate(SyntheticConfig(n_tokens=512, seed=1))
    cfg = SyntheticTrainConfig(batch_size=512, epochs=1, seed=3, k=4, dead_after_tokens=256)
    ours, ref = train_topk(d.x, cfg, 96), train_dense_reference(d.x, cfg, 96)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(getattr(ours.sae, name), getattr(ref.sae, name), atol=1e-5, rtol=1e-4)


def test_invalid_configs() -> None:
    with pytest.raises(Invalid):
        SyntheticConfig(mean_l0=100, n_features=64)
    with pytest.raises(Invalid):
        SyntheticConfig(rho=1.0)
    with pytest.raises(Invalid):
        SyntheticTrainConfig(k=10, d_sae=5)
    with pytest.raises(Invalid):
        synthetic_ground_truth(SyntheticConfig(n_tokens=100), SyntheticTrainConfig(batch_size=512))
