"""Transcoder folders: circuit-tracer transcoder sets and SAELens transcoders, round trips through our
loader and, for SAELens, through SAELens itself."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from interpretability_workbench.circuits.io import (load_circuit_tracer, load_transcoder, save_circuit_tracer,
                                                    save_transcoder)
from interpretability_workbench.errors import Invalid, NotFound

from .conftest import make_transcoder
from .test_prune_scores import circuit_tracer_module


def _same_function(a, b, d_in: int) -> None:
    x = torch.randn(32, d_in)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    torch.testing.assert_close(ya.y_hat, yb.y_hat)
    torch.testing.assert_close(ya.feature_acts, yb.feature_acts)


@pytest.fixture
def relu_set(tiny_lm):
    return [make_transcoder(tiny_lm, 0, arch="jumprelu", seed=4),
            make_transcoder(tiny_lm, 1, arch="relu", skip=True, seed=5),
            make_transcoder(tiny_lm, 2, arch="jumprelu", skip=True, seed=6)]


def test_circuit_tracer_set_round_trip_and_layout(relu_set, tiny_lm, tmp_path):
    folder = save_circuit_tracer(relu_set, tmp_path / "set", scan="tiny/test")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["model_kind"] == "transcoder_set" and config["model_name"] == tiny_lm.model_id
    assert config["feature_input_hook"] == "mlp.hook_in" and config["feature_output_hook"] == "mlp.hook_out"
    w = load_file(str(folder / "layer_2.safetensors"))
    d, d_tc = tiny_lm.d_model, 24
    assert w["W_enc"].shape == (d_tc, d) and w["W_dec"].shape == (d_tc, d) and w["W_skip"].shape == (d, d)
    assert "activation_function.threshold" in w
    assert "W_skip" not in load_file(str(folder / "layer_0.safetensors"))
    # circuit-tracer applies W_skip as x @ W_skip.T and W_enc as F.linear(x, W_enc)
    x = torch.randn(5, d)
    tc = relu_set[2]
    with torch.no_grad():
        torch.testing.assert_close(x @ w["W_skip"].T, tc.skip_term(x))
        torch.testing.assert_close(x @ w["W_enc"].T + w["b_enc"], tc.pre_activations(x))
    back = load_circuit_tracer(folder)
    assert back.scan == "tiny/test" and back.model_name == tiny_lm.model_id
    assert [t.cfg.architecture for t in back.transcoders] == ["jumprelu", "relu", "jumprelu"]
    assert [t.cfg.skip for t in back.transcoders] == [False, True, True]
    for a, b in zip(relu_set, back.transcoders):
        _same_function(a, b, d)
        assert b.cfg.input_hook == f"blocks.{a.layer}.ln2.hook_normalized"


def test_circuit_tracer_refuses_what_it_cannot_read(relu_set, tiny_lm, tmp_path):
    with pytest.raises(Invalid, match="TopK"):
        save_circuit_tracer([make_transcoder(tiny_lm, 0)], tmp_path / "a")
    with pytest.raises(Invalid, match="every layer"):
        save_circuit_tracer(relu_set[1:], tmp_path / "b")
    folder = save_circuit_tracer(relu_set, tmp_path / "c")
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump({**cfg, "feature_input_hook": "hook_resid_mid"}))
    with pytest.raises(Invalid, match="hook_resid_mid"):
        load_circuit_tracer(folder)
    (folder / "config.yaml").write_text(yaml.safe_dump({**cfg, "model_kind": "cross_layer_transcoder"}))
    with pytest.raises(Invalid, match="cross_layer_transcoder"):
        load_circuit_tracer(folder)
    (folder / "config.yaml").write_text(yaml.safe_dump({**cfg, "transcoders": ["hf://org/repo/layer_0.safetensors"]}))
    with pytest.raises(Invalid, match="download"):
        load_circuit_tracer(folder)
    with pytest.raises(NotFound):
        load_circuit_tracer(tmp_path / "missing")


def test_imports_a_set_written_the_way_circuit_tracer_writes_it(tiny_lm, tmp_path):
    """A set laid out as circuit-tracer's cache writes it (``to_safetensors`` keys, minimal config with an
    explicit list of files), built here from plain tensors."""
    d, d_tc = tiny_lm.d_model, 16
    g = torch.Generator().manual_seed(0)
    files = []
    for layer in range(3):
        w = {"W_enc": torch.randn(d_tc, d, generator=g), "W_dec": torch.randn(d_tc, d, generator=g),
             "b_enc": torch.randn(d_tc, generator=g), "b_dec": torch.randn(d, generator=g),
             "activation_function.threshold": torch.rand(d_tc, generator=g)}
        save_file(w, str(tmp_path / f"tc{layer}.safetensors"))
        files.append(f"tc{layer}.safetensors")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "model_kind": "transcoder_set", "model_name": "tiny", "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out", "transcoders": files}))
    s = load_circuit_tracer(tmp_path)
    assert s.scan == tmp_path.name and len(s.transcoders) == 3
    tc = s.transcoders[1]
    w = load_file(str(tmp_path / "tc1.safetensors"))
    x = torch.randn(4, d)
    pre = x @ w["W_enc"].T + w["b_enc"]
    expected = (pre * (pre > w["activation_function.threshold"])) @ w["W_dec"] + w["b_dec"]
    with torch.no_grad():
        torch.testing.assert_close(tc(x).y_hat, expected)


def test_loads_in_circuit_tracer_itself(relu_set, tmp_path):
    slt = circuit_tracer_module("circuit_tracer.transcoder.single_layer_transcoder")
    if slt is None:
        pytest.skip("circuit-tracer is not importable here (it pins transformers<=4.57)")
    folder = save_circuit_tracer(relu_set, tmp_path / "set")
    theirs = slt.load_transcoder_set({i: str(folder / f"layer_{i}.safetensors") for i in range(3)}, scan="x",
                                     feature_input_hook="mlp.hook_in", feature_output_hook="mlp.hook_out",
                                     device=torch.device("cpu"), lazy_encoder=False, lazy_decoder=False)
    x = torch.randn(6, relu_set[0].cfg.d_in)
    for ours, t in zip(relu_set, theirs):
        with torch.no_grad():
            torch.testing.assert_close(t(x), ours(x).y_hat, atol=1e-6, rtol=1e-5)


def test_saelens_round_trip_through_saelens(relu_set, tmp_path):
    from sae_lens import SAE

    for tc in relu_set:
        folder = save_transcoder(tc, tmp_path / f"l{tc.layer}")
        theirs = SAE.load_from_disk(str(folder))
        x = torch.randn(8, tc.cfg.d_in)
        with torch.no_grad():
            torch.testing.assert_close(theirs(x), tc(x).y_hat, atol=1e-6, rtol=1e-5)
        ours = load_transcoder(folder)
        assert ours.cfg.to_dict() == tc.cfg.to_dict()
        _same_function(tc, ours, tc.cfg.d_in)


def test_imports_a_transcoder_saved_by_saelens(tmp_path):
    from sae_lens import JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig

    cfg = JumpReLUSkipTranscoderConfig(d_in=64, d_sae=32, d_out=64, apply_b_dec_to_input=False)
    theirs = JumpReLUSkipTranscoder(cfg)
    with torch.no_grad():
        theirs.threshold.copy_(torch.rand(32) * 0.1)
        theirs.W_skip.copy_(torch.randn(64, 64) * 0.05)
        theirs.b_enc.copy_(torch.randn(32) * 0.1)
    theirs.save_model(str(tmp_path / "tc"))
    with pytest.raises(Invalid, match="give the layer"):
        load_transcoder(tmp_path / "tc")
    ours = load_transcoder(tmp_path / "tc", layer=4)
    assert ours.cfg.architecture == "jumprelu" and ours.cfg.skip and ours.layer == 4
    x = torch.randn(10, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).y_hat, theirs(x), atol=1e-6, rtol=1e-5)
    raw = json.loads((tmp_path / "tc" / "cfg.json").read_text())
    raw["metadata"]["hook_name"] = "blocks.2.hook_resid_mid"
    (tmp_path / "tc" / "cfg.json").write_text(json.dumps(raw))
    with pytest.raises(Invalid, match="hook_resid_mid"):
        load_transcoder(tmp_path / "tc")


def test_topk_saves_natively_and_saelens_refuses_it(tiny_lm, tmp_path):
    from sae_lens import SAE

    tc = make_transcoder(tiny_lm, 1, skip=True, seed=9)
    folder = save_transcoder(tc, tmp_path / "topk")
    assert json.loads((folder / "cfg.json").read_text())["architecture"] == "topk_skip_transcoder"
    _same_function(tc, load_transcoder(folder), tiny_lm.d_model)
    with pytest.raises(Exception):
        SAE.load_from_disk(str(folder))
