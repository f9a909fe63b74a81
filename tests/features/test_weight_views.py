"""The corpus-independent views (logit effects, decoder neighbours) against a dense computation written here,
and their cache beside the SAE: read back exactly, never read for other weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from interpretability_workbench.features.weight_views import (WEIGHT_VIEWS_NAME, compute_weight_views,
                                                              load_weight_views, weight_views, weights_digest)
from interpretability_workbench.model.loader import load_model
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

N = 7


def _final_norm_and_unembed(model) -> tuple[torch.nn.Module, torch.Tensor]:
    """Read through the Hugging Face attributes (not the workbench's hook map)."""
    t = model.config.model_type
    norm = {"llama": lambda: model.model.norm, "gpt2": lambda: model.transformer.ln_f,
            "gpt_neox": lambda: model.gpt_neox.final_layer_norm}[t]()
    return norm, model.get_output_embeddings().weight.detach()


def _lm(path: Path, seed: int = 0):
    """A tiny model with a non-trivial final-norm weight (so the gain is tested, not ones)."""
    lm = load_model(str(path), device="cpu", dtype="float32")
    norm, _ = _final_norm_and_unembed(lm.model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.weight.copy_(0.5 + torch.rand(norm.weight.shape, generator=g))
    return lm


def _sae(d_in: int, d_sae: int = 96, seed: int = 0, scale: float = 2.5) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=4,
                                      hook_name="blocks.1.hook_resid_post", model_id="tiny",
                                      normalize_activations="expected_average_only_in", norm_scale=scale))
    sae.reset_parameters(seed=seed)
    sae.requires_grad_(False)
    return sae


def _dense(model, sae: SparseAutoencoder, i: int) -> torch.Tensor:
    """``W_U · (γ ⊙ c(W_dec[i] / s))`` with ``c`` the mean-centering of LayerNorm models (identity for RMSNorm)."""
    norm, w_u = _final_norm_and_unembed(model)
    d = sae.W_dec[i].double() / sae.scale
    if isinstance(norm, torch.nn.LayerNorm):
        d = d - d.mean()
    return w_u.double() @ (norm.weight.detach().double() * d)  # [d_vocab]


def _assert_same(a, b) -> None:
    for x, y in zip(a.logits + a.neighbours, b.logits + b.neighbours):
        if x.dtype.is_floating_point:
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
        else:
            assert torch.equal(x, y)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "neox"])
def test_logit_effects_equal_a_dense_readout(tiny_model_dirs, kind):
    lm = _lm(tiny_model_dirs[kind])
    sae = _sae(lm.d_model)
    v = compute_weight_views(lm.model, sae, N, N)
    for i in (0, 17, 95):
        dense = _dense(lm.model, sae, i)
        top, bottom = dense.topk(N), dense.topk(N, largest=False)
        assert v.logits.pos_ids[i].tolist() == top.indices.tolist()
        assert v.logits.neg_ids[i].tolist() == bottom.indices.tolist()
        torch.testing.assert_close(v.logits.pos_vals[i].double(), top.values, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v.logits.neg_vals[i].double(), bottom.values, atol=1e-5, rtol=1e-5)
        assert abs(float(v.logits.hist_lo[i]) - float(dense.min())) < 1e-5
        assert abs(float(v.logits.hist_hi[i]) - float(dense.max())) < 1e-5
        assert int(v.logits.hist_counts[i].sum()) == dense.shape[0]
    w = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    cos = (w @ w.T).fill_diagonal_(-2.0)
    top = cos.topk(N, dim=1)
    assert torch.equal(v.neighbours.index, top.indices)
    torch.testing.assert_close(v.neighbours.score, top.values, atol=1e-5, rtol=0)


def test_cached_views_equal_a_fresh_computation(tiny_model_dirs, tmp_path):
    lm = _lm(tiny_model_dirs["gpt2"])
    sae = _sae(lm.d_model)
    path = tmp_path / WEIGHT_VIEWS_NAME
    first = weight_views(lm.model, sae, N, N, path)
    assert not first.cached and path.is_file()
    again = weight_views(lm.model, sae, N, N, path)
    assert again.cached
    _assert_same(again, compute_weight_views(lm.model, sae, N, N))
    _assert_same(again, first)


def test_another_unembedding_decoder_or_norm_is_never_read_from_the_cache(tiny_model_dirs, tmp_path):
    path = tmp_path / WEIGHT_VIEWS_NAME
    lm = _lm(tiny_model_dirs["llama"])
    sae = _sae(lm.d_model)
    old = weight_views(lm.model, sae, N, N, path)

    other = _lm(tiny_model_dirs["llama"])  # another model object: same shapes, a different unembedding
    _, w_u = _final_norm_and_unembed(other.model)
    with torch.no_grad():
        w_u.add_(torch.randn(w_u.shape) * 0.5)
    got = weight_views(other.model, sae, N, N, path)
    assert not got.cached
    _assert_same(got, compute_weight_views(other.model, sae, N, N))
    assert not torch.equal(got.logits.pos_vals, old.logits.pos_vals)
    assert weight_views(other.model, sae, N, N, path).cached  # the file now holds the other model's views

    with torch.no_grad():  # the same unembedding tensor, edited in place
        w_u.mul_(-1.0)
    got = weight_views(other.model, sae, N, N, path)
    assert not got.cached
    assert torch.equal(got.logits.pos_ids, compute_weight_views(other.model, sae, N, N).logits.pos_ids)

    norm, _ = _final_norm_and_unembed(other.model)  # the final norm's gain
    with torch.no_grad():
        norm.weight[3] += 1.0
    assert not weight_views(other.model, sae, N, N, path).cached

    with torch.no_grad():  # a retrained (edited) decoder
        sae.W_dec[5] = sae.W_dec[9]
    got = weight_views(other.model, sae, N, N, path)
    assert not got.cached
    assert got.neighbours.index[5, 0] == 9 and got.neighbours.index[9, 0] == 5

    retrained = _sae(lm.d_model, seed=1)  # another SAE of the same shape
    assert not weight_views(other.model, retrained, N, N, path).cached
    assert not weight_views(other.model, retrained, N + 1, N, path).cached  # other sizes asked for


def test_digest_depends_on_every_input(tiny_model_dirs):
    lm = _lm(tiny_model_dirs["neox"])
    sae = _sae(lm.d_model)
    base = weights_digest(lm.model, sae, N, N)
    assert weights_digest(lm.model, sae, N, N) == base
    assert weights_digest(lm.model, _sae(lm.d_model, scale=3.0), N, N) != base
    assert weights_digest(lm.model, sae, N, N + 1) != base
    assert weights_digest(_lm(tiny_model_dirs["neox"], seed=1).model, sae, N, N) != base


def test_unreadable_or_stale_file_is_recomputed(tiny_model_dirs, tmp_path):
    lm = _lm(tiny_model_dirs["llama"])
    sae = _sae(lm.d_model)
    path = tmp_path / WEIGHT_VIEWS_NAME
    path.write_bytes(b"not a safetensors file")
    got = weight_views(lm.model, sae, N, N, path)
    assert not got.cached
    digest = weights_digest(lm.model, sae, N, N)
    assert load_weight_views(path, digest) is not None
    assert load_weight_views(path, "0" * 64) is None
    assert load_weight_views(tmp_path / "missing.safetensors", digest) is None


def test_reanalysis_reads_the_views_kept_beside_the_sae(state, make_sae):
    sae_id, _ = make_sae(d_sae=48, seed=3)
    path = state.features.weights_cache_path(sae_id)
    assert path.parent == Path(state.saes.row(sae_id).path) and not path.exists()
    first = state.features.analyze(sae_id, n_tokens=630)
    assert first["weight_views_cached"] is False and path.is_file()
    before = {r.idx: r.data["logits"] for r in state.features.repo.iter_rows(sae_id)}
    again = state.features.analyze(sae_id, n_tokens=630)
    assert again["weight_views_cached"] is True
    after = {r.idx: r.data["logits"] for r in state.features.repo.iter_rows(sae_id)}
    assert after == before


def test_unembedding_digest_is_remembered_per_parameter_until_written(tiny_model_dirs):
    from interpretability_workbench.features import weight_views as wv

    lm = _lm(tiny_model_dirs["llama"])
    sae = _sae(lm.d_model)
    _, w_u = _final_norm_and_unembed(lm.model)
    param = lm.model.get_output_embeddings().weight
    base = weights_digest(lm.model, sae, N, N)
    assert wv._memo[id(param)][0]() is param  # remembered for this parameter object
    assert weights_digest(lm.model, sae, N, N) == base
    with torch.no_grad():
        param[0, 0] += 1.0  # an in-place write bumps the version: hashed again
    assert weights_digest(lm.model, sae, N, N) != base
