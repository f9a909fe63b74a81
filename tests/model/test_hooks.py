import pytest
import torch

from interpretability_workbench.model.hook_map import resolve
from interpretability_workbench.model.hook_names import HOOK_KINDS, hook_name, parse_hook_name
from interpretability_workbench.model.hooks import forward_last_logits, hooks, run_with_cache
from interpretability_workbench.model.loader import load_model


@pytest.fixture(scope="module", params=["llama", "gpt2", "neox"])
def lm(request, tiny_model_dirs):
    return load_model(str(tiny_model_dirs[request.param]), device="cpu")


IDS = torch.tensor([[5, 17, 42, 7, 99, 3], [8, 8, 120, 64, 2, 11]])


def test_hook_names_roundtrip_and_errors():
    assert hook_name(3, "hook_mlp_out") == "blocks.3.hook_mlp_out"
    assert parse_hook_name("blocks.12.hook_resid_pre") == (12, "resid_pre")
    with pytest.raises(ValueError, match="unknown hook kind"):
        hook_name(0, "resid_mid")
    with pytest.raises(ValueError, match="invalid hook name"):
        parse_hook_name("blocks.x.hook_resid_pre")


def test_every_hook_has_batch_pos_dmodel_shape(lm):
    names = [hook_name(l, k) for l in range(lm.n_layers) for k in HOOK_KINDS]
    res = run_with_cache(lm.model, IDS, names, stop_at_layer=False)
    assert res.logits is not None and res.logits.shape == (2, 6, lm.vocab_size)
    for n in names:
        assert res.cache[n].shape == (2, 6, lm.d_model), n


def test_residual_stream_bookkeeping(lm):
    """resid_post = resid_pre + attn_out + mlp_out, and resid_post[l] = resid_pre[l+1]."""
    names = [hook_name(l, k) for l in range(lm.n_layers) for k in HOOK_KINDS]
    c = run_with_cache(lm.model, IDS, names, stop_at_layer=False).cache
    for l in range(lm.n_layers):
        total = c[f"blocks.{l}.hook_resid_pre"] + c[f"blocks.{l}.hook_attn_out"] + c[f"blocks.{l}.hook_mlp_out"]
        torch.testing.assert_close(c[f"blocks.{l}.hook_resid_post"], total, atol=1e-5, rtol=1e-5)
        if l + 1 < lm.n_layers:
            torch.testing.assert_close(c[f"blocks.{l}.hook_resid_post"], c[f"blocks.{l + 1}.hook_resid_pre"])


def test_resid_matches_transformers_hidden_states(lm):
    out = lm.model(IDS, output_hidden_states=True)
    c = run_with_cache(lm.model, IDS, ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post"]).cache
    torch.testing.assert_close(c["blocks.0.hook_resid_pre"], out.hidden_states[0])
    torch.testing.assert_close(c["blocks.1.hook_resid_post"], out.hidden_states[2])


def test_stop_at_layer_identical_and_does_no_later_work(lm):
    name = "blocks.1.hook_resid_post"
    full = run_with_cache(lm.model, IDS, [name], stop_at_layer=False)
    calls = []
    later = resolve(lm.model, "blocks.2.hook_resid_pre").module
    h = later.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        early = run_with_cache(lm.model, IDS, [name])
    finally:
        h.remove()
    assert early.logits is None and calls == []
    assert torch.equal(early.cache[name], full.cache[name])


def test_hooks_are_removed_even_after_errors(lm):
    before = {id(m): (len(m._forward_hooks), len(m._forward_pre_hooks)) for m in lm.model.modules()}

    def boom(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with hooks(lm.model, {"blocks.0.hook_resid_post": boom, "blocks.1.hook_resid_pre": lambda x: None}):
            lm.model(IDS)
    after = {id(m): (len(m._forward_hooks), len(m._forward_pre_hooks)) for m in lm.model.modules()}
    assert before == after


def test_replacing_an_activation_changes_the_output(lm):
    base = lm.model(IDS).logits
    with hooks(lm.model, {"blocks.1.hook_resid_pre": lambda x: x * 0}):
        zeroed = lm.model(IDS).logits
    assert not torch.allclose(base, zeroed)
    # pass-through hook leaves logits identical
    with hooks(lm.model, {"blocks.1.hook_mlp_out": lambda x: x}):
        same = lm.model(IDS).logits
    torch.testing.assert_close(base, same)


def test_forward_last_logits_full_and_from_layer(lm):
    full = lm.model(IDS).logits[:, -1]
    torch.testing.assert_close(forward_last_logits(lm.model, IDS), full, atol=1e-5, rtol=1e-5)
    for layer in range(1, lm.n_layers):
        cached = run_with_cache(lm.model, IDS, [f"blocks.{layer}.hook_resid_pre"]).cache[f"blocks.{layer}.hook_resid_pre"]
        got = forward_last_logits(lm.model, IDS, from_layer=layer, resid_pre=cached)
        torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    # the skipped blocks are restored afterwards
    assert all(type(b).__name__ != "_Skip" for b in lm.model.modules())


def test_layer_out_of_range_is_clear(lm):
    with pytest.raises(ValueError, match="layer 7 is out of range: this model has layers 0..2"):
        run_with_cache(lm.model, IDS, ["blocks.7.hook_resid_post"])
