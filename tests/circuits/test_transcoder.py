"""Transcoder module, training step and the MLP-input hook."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.circuits.transcoder import (Transcoder, TranscoderConfig, after_optimizer_step,
                                                            before_optimizer_step, init_b_dec, mlp_fvu,
                                                            transcoder_step)
from interpretability_workbench.model.hook_map import resolve
from interpretability_workbench.model.hook_names import hook_name, parse_hook_name
from interpretability_workbench.model.hooks import run_with_cache


def test_mlp_in_hook_is_the_norm_output(tiny_model_dirs):
    from interpretability_workbench.model.loader import load_model

    assert hook_name(3, "mlp_in") == "blocks.3.ln2.hook_normalized"
    assert parse_hook_name("blocks.3.ln2.hook_normalized") == (3, "mlp_in")
    norms = {"llama": "model.layers.1.post_attention_layernorm", "gpt2": "transformer.h.1.ln_2",
             "neox": "gpt_neox.layers.1.post_attention_layernorm"}
    ids = torch.tensor([[3, 9, 27, 81, 243]])
    for family, path in norms.items():
        lm = load_model(str(tiny_model_dirs[family]), device="cpu", dtype="float32")
        seen = {}
        h = lm.model.get_submodule(path).register_forward_hook(lambda _m, _i, o: seen.setdefault("x", o))
        try:
            c = run_with_cache(lm.model, ids, ["blocks.1.ln2.hook_normalized"], stop_at_layer=False).cache
        finally:
            h.remove()
        torch.testing.assert_close(c["blocks.1.ln2.hook_normalized"], seen["x"])
        assert resolve(lm.model, "blocks.1.ln2.hook_normalized").io == "input"


def test_config_validation():
    cfg = TranscoderConfig(d_in=8, d_tc=16, k=4, layer=2)
    assert cfg.d_out == 8 and cfg.input_hook == "blocks.2.ln2.hook_normalized" and cfg.output_hook == "blocks.2.hook_mlp_out"
    assert TranscoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="k must be"):
        TranscoderConfig(d_in=8, d_tc=16, k=17)
    with pytest.raises(ValueError, match="architecture"):
        TranscoderConfig(d_in=8, d_tc=16, architecture="gated", k=4)
    with pytest.raises(ValueError, match="not in layer 1"):
        TranscoderConfig(d_in=8, d_tc=16, k=4, layer=1, input_hook="blocks.0.ln2.hook_normalized")


def test_forward_matches_the_formula():
    tc = Transcoder(TranscoderConfig(d_in=6, d_tc=10, d_out=4, architecture="jumprelu", skip=True))
    with torch.no_grad():
        for p in (tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec, tc.W_skip):
            p.copy_(torch.randn_like(p))
        tc.threshold.copy_(torch.rand(10))
    x = torch.randn(5, 6)
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * (pre > tc.threshold)
    out = tc(x)
    torch.testing.assert_close(out.y_hat, f @ tc.W_dec + tc.b_dec + x @ tc.W_skip)
    torch.testing.assert_close(out.feature_acts, f)
    with pytest.raises(ValueError, match="skip"):
        tc.decode(f)


def _mlp_data(tiny_lm, n_ctx: int = 6) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """MLP inputs and outputs of every layer from one forward per batch (position 0 dropped)."""
    ids = torch.randint(1, tiny_lm.vocab_size, (n_ctx, 24))
    names = [hook_name(l, k) for l in range(tiny_lm.n_layers) for k in ("mlp_in", "mlp_out")]
    c = run_with_cache(tiny_lm.model, ids, names).cache
    xs = [c[hook_name(l, "mlp_in")][:, 1:].reshape(-1, tiny_lm.d_model) for l in range(tiny_lm.n_layers)]
    ys = [c[hook_name(l, "mlp_out")][:, 1:].reshape(-1, tiny_lm.d_model) for l in range(tiny_lm.n_layers)]
    return xs, [y / y.std() for y in ys]  # the random model's MLP outputs are ~0.01: unit scale trains faster


def _train(tc: Transcoder, x: torch.Tensor, y: torch.Tensor, steps: int, **kw) -> list:
    init_b_dec(tc, y)
    opt = torch.optim.Adam([p for p in tc.parameters() if p.requires_grad], lr=3e-3)
    hist = []
    for _ in range(steps):
        r = transcoder_step(tc, x, y, **kw)
        opt.zero_grad()
        r.loss.backward()
        before_optimizer_step(tc)
        opt.step()
        after_optimizer_step(tc)
        hist.append(r)
    return hist


def test_topk_training_on_every_layer_from_one_forward(tiny_lm):
    xs, ys = _mlp_data(tiny_lm)
    for layer in range(tiny_lm.n_layers):
        tc = Transcoder(TranscoderConfig(d_in=tiny_lm.d_model, d_tc=128, k=8, layer=layer, skip=True))
        tc.reset_parameters(seed=layer)
        before = mlp_fvu(tc, xs[layer], ys[layer])
        hist = _train(tc, xs[layer], ys[layer], 60)
        assert hist[-1].fvu < 0.5 * hist[0].fvu and hist[-1].l0 <= 8
        after = mlp_fvu(tc, xs[layer], ys[layer])
        assert after < before and after == pytest.approx(hist[-1].fvu, rel=0.2)
        torch.testing.assert_close(tc.W_dec.norm(dim=1), torch.ones(128))


def test_fvu_and_auxk():
    torch.manual_seed(0)
    tc = Transcoder(TranscoderConfig(d_in=8, d_tc=32, k=2))
    x, y = torch.randn(64, 8), torch.randn(64, 8)
    r = transcoder_step(tc, x, y)
    with torch.no_grad():
        err = tc(x).y_hat - y
    assert r.fvu == pytest.approx(float(err.pow(2).sum() / (y - y.mean(0)).pow(2).sum()), rel=1e-5)
    assert r.aux == 0.0 and r.fired.numel() == 64 * 2
    dead = torch.zeros(32, dtype=torch.bool)
    dead[16:] = True
    r = transcoder_step(tc, x, y, dead=dead, k_aux=4)
    var = float((y - y.mean(0)).pow(2).sum())
    assert r.aux > 0  # minimised in SAELens's units: (FVU + coef x AuxK) x per-token variance
    assert float(r.loss) == pytest.approx((r.fvu + r.aux / 32) * var / 64, rel=1e-5)
    r.loss.backward()
    assert tc.W_dec.grad[16:].abs().sum() > 0  # dead latents learn from the residual


def test_jumprelu_threshold_gets_the_straight_through_gradient():
    x = torch.tensor([[0.4, 0.1, 0.0], [1.0, 0.45, 0.0]])  # pre-activations = x[:, :2]
    y = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]])

    def step(coef: float):
        cfg = TranscoderConfig(d_in=3, d_tc=2, architecture="jumprelu", l0_coefficient=coef, jumprelu_bandwidth=0.5)
        tc = Transcoder(cfg)
        tc.reset_parameters(seed=0)
        with torch.no_grad():
            tc.W_enc.copy_(torch.eye(3)[:, :2])
            tc.threshold.copy_(torch.tensor([0.3, 0.3]))
        r = transcoder_step(tc, x, y)
        r.loss.backward()
        return r, tc.threshold.grad.clone()

    r, g_with = step(1.0)
    _, g_without = step(0.0)
    assert r.l0 == pytest.approx(1.5) and r.aux == pytest.approx(1.5)  # 0.4, 1.0 and 0.45 pass 0.3
    # d(mean L0)/dt_j = -(1/eps) sum_b K((pre_bj - t_j)/eps) / batch, K = 1 where |pre - t| < eps/2 = 0.25:
    # latent 0 has one such token (0.4), latent 1 two (0.1 and 0.45); the whole loss is minimised times the
    # per-token variance of y (SAELens's units, the L0 coefficient still relative to FVU)
    per_token_var = float((y - y.mean(0)).pow(2).sum()) / 2
    torch.testing.assert_close(g_with - g_without, -(1 / 0.5) * torch.tensor([1.0, 2.0]) / 2 * per_token_var)


def test_jumprelu_training_trades_reconstruction_for_sparsity(tiny_lm):
    xs, ys = _mlp_data(tiny_lm)
    l0s = []
    for coef in (0.0, 0.05):
        tc = Transcoder(TranscoderConfig(d_in=tiny_lm.d_model, d_tc=96, architecture="jumprelu", layer=1,
                                         l0_coefficient=coef, jumprelu_bandwidth=0.05))
        tc.reset_parameters(seed=3)
        with torch.no_grad():
            tc.threshold.fill_(0.05)
        hist = _train(tc, xs[1], ys[1], 80)
        assert hist[-1].fvu < hist[0].fvu
        assert float(tc.threshold.min()) >= 0
        l0s.append(hist[-1].l0)
    assert l0s[1] < l0s[0]
