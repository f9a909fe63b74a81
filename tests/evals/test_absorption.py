"""Absorption: a planted SAE whose letter latent is absorbed by token latents on known words, and the full
pipeline on the tiny model (prompts -> activations -> probes -> rates in range)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interpretability_workbench.errors import BadRequest
from interpretability_workbench.evals.absorption import AbsorptionConfig, absorption, absorption_from_activations
from interpretability_workbench.evals.probes import stratified_split
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

N_LETTERS, PER_LETTER, N_ABSORBED = 4, 40, 10


def planted() -> tuple[torch.Tensor, np.ndarray, list[str], SparseAutoencoder, set[int]]:
    """Words of letters a..d: ``x = 3 p_letter + u_word`` (orthonormal directions). The SAE (TopK, k=2) has a
    latent per letter (decoder p_letter) and one per word (decoder u_word). For ten 'a' words the word latent
    absorbs the letter: its decoder is ``(3 p_a + u_w)/sqrt(10)`` and the 'a' latent's encoder is pushed below
    zero on them, so only the word latent fires there."""
    n = N_LETTERS * PER_LETTER
    d = N_LETTERS + n + 4
    basis = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))[0].T  # rows orthonormal
    p, u = basis[:N_LETTERS], basis[N_LETTERS: N_LETTERS + n]
    letters = np.repeat(np.arange(N_LETTERS), PER_LETTER)
    words = [f" {'abcd'[letter]}word{i}" for i, letter in enumerate(letters)]
    absorbed = set(range(5, 5 + N_ABSORBED))  # 'a' words 5..14
    x = 3 * p[letters] + u + 0.01 * torch.randn(n, d, generator=torch.Generator().manual_seed(1))
    sae = SparseAutoencoder(SAEConfig(d_in=d, d_sae=N_LETTERS + n, k=2, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        for letter in range(N_LETTERS):
            sae.W_dec[letter] = p[letter]
            enc = p[letter].clone()
            for w in absorbed:
                if letters[w] == letter:
                    enc -= 3.5 * u[w]
            sae.W_enc[:, letter] = enc
        for w in range(n):
            if w in absorbed:
                dec = (3 * p[letters[w]] + u[w]) / math.sqrt(10)
                sae.W_dec[N_LETTERS + w] = dec
                sae.W_enc[:, N_LETTERS + w] = math.sqrt(10) * u[w]
            else:
                sae.W_dec[N_LETTERS + w] = u[w]
                sae.W_enc[:, N_LETTERS + w] = u[w]
    return x, letters, words, sae, absorbed


def test_planted_absorption_is_detected() -> None:
    x, letters, words, sae, absorbed = planted()
    cfg = AbsorptionConfig(seed=0)
    res = absorption_from_activations(x, letters, words, sae, cfg)
    by = {r.letter: r for r in res.letters}
    assert set(by) == {"a", "b", "c", "d"} and not res.skipped
    test_rows = set(stratified_split(letters, cfg.test_fraction, cfg.seed).test.tolist())
    expect = sorted(words[w] for w in absorbed & test_rows)
    assert expect  # the split leaves some absorbed words in the test set
    a = by["a"]
    assert a.probe_f1 == pytest.approx(1.0) and a.n_probe_true_positives == a.n_test
    assert a.main_latents == [0]  # the letter latent, not a word latent
    assert sorted(a.absorbed_words) == expect
    assert sorted(a.absorbing_latents) == sorted(N_LETTERS + w for w in absorbed & test_rows)
    assert a.full_absorption_rate == pytest.approx(len(expect) / a.n_test)
    assert a.mean_absorption_fraction == pytest.approx(len(expect) / a.n_test, abs=1e-6)
    for letter in "bcd":
        r = by[letter]
        assert r.main_latents == ["abcd".index(letter)]
        assert r.full_absorption_rate == 0.0 and r.mean_absorption_fraction == pytest.approx(0.0, abs=1e-6)
    assert res.mean_full_absorption() == pytest.approx(a.full_absorption_rate / 4)
    d = res.to_dict()
    assert d["mean_main_latents"] == 1.0 and d["letters"][0]["letter"] == "a"


def test_without_absorption_nothing_is_flagged() -> None:
    x, letters, words, sae, absorbed = planted()
    with torch.no_grad():  # undo the absorption: word latents hold only their word, letter encoders are clean
        for w in absorbed:
            sae.W_dec[N_LETTERS + w] = x[w] - 3 * sae.W_dec[0]
            sae.W_dec[N_LETTERS + w] /= sae.W_dec[N_LETTERS + w].norm()
            sae.W_enc[:, N_LETTERS + w] = sae.W_dec[N_LETTERS + w]
        sae.W_enc[:, 0] = sae.W_dec[0]
    res = absorption_from_activations(x, letters, words, sae, AbsorptionConfig(seed=0))
    assert res.mean_full_absorption() == 0.0 and res.mean_absorption_fraction() == pytest.approx(0.0, abs=1e-6)


def test_absorption_on_the_tiny_model_runs_end_to_end(tiny_lm) -> None:
    sae = SparseAutoencoder(SAEConfig(d_in=tiny_lm.d_model, d_sae=256, k=8, hook_name="blocks.1.hook_resid_post"))
    sae.reset_parameters(seed=0)
    res = absorption(tiny_lm, sae, AbsorptionConfig(min_probe_f1=0.0, max_k=3))
    assert res.n_words > 20 and res.letters
    for r in res.letters:
        assert 0.0 <= r.mean_absorption_fraction <= 1.0 and 0.0 <= r.full_absorption_rate <= 1.0
        assert 0 <= r.n_probe_true_positives <= r.n_test and 0.0 <= r.probe_f1 <= 1.0
        assert all(0 <= i < 256 for i in r.main_latents) and len(r.main_latents) <= 3
    assert set(res.skipped).isdisjoint({r.letter for r in res.letters})
    # a strict probe bar evaluates no more letters than a lenient one
    strict = absorption(tiny_lm, sae, AbsorptionConfig(min_probe_f1=0.99, max_k=3))
    assert len(strict.letters) <= len(res.letters)


def test_bad_inputs() -> None:
    x, letters, words, sae, _ = planted()
    with pytest.raises(BadRequest):
        absorption_from_activations(x[:10], letters, words, sae)
    with pytest.raises(BadRequest):
        AbsorptionConfig(test_fraction=1.0)


@pytest.mark.integration
def test_first_letter_task_on_the_default_model(default_lm) -> None:
    """The real tokenizer yields thousands of words, prompts keep nearly all, and the model's residual
    stream at layer 6 carries first letters linearly for most letters (the task is meaningful there)."""
    from interpretability_workbench.evals.tasks import first_letter_prompts, first_letter_words

    words = first_letter_words(default_lm.tokenizer)
    assert len(words.words) > 5000 and len(np.unique(words.letters)) == 26
    sample = first_letter_words(default_lm.tokenizer, max_per_letter=24)
    prompts = first_letter_prompts(default_lm.tokenizer, sample)
    assert len(prompts.kept) > 0.95 * len(sample.words)
    sae = SparseAutoencoder(SAEConfig(d_in=default_lm.d_model, d_sae=1024, k=16, hook_name="blocks.6.hook_resid_post"))
    sae.reset_parameters(seed=0)
    res = absorption(default_lm, sae, AbsorptionConfig(max_per_letter=24, max_k=3))
    assert len(res.letters) >= 10, res.skipped
    assert all(r.probe_f1 >= 0.6 for r in res.letters)
    assert 0.0 <= res.mean_absorption_fraction() <= 1.0 and 0.0 <= res.mean_full_absorption() <= 1.0
