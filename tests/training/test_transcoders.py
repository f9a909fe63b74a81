"""Transcoder training on the tiny Llama: the data stream against independent hook captures, exact folding
of the data scales, a run that lowers the MLP-output FVU and registers a set whose stored metrics are
recomputed here from the saved files, cancel and the one-run rule, circuit-tracer export of JumpReLU sets."""
from __future__ import annotations

import io
import zipfile

import pytest
import torch

from interpretability_workbench.activations.corpus import load_texts, make_contexts
from interpretability_workbench.circuits.io import load_circuit_tracer, load_transcoder
from interpretability_workbench.circuits.replacement import replacement_ce
from interpretability_workbench.circuits.transcoder import Transcoder, TranscoderConfig, mlp_fvu
from interpretability_workbench.errors import Conflict, Invalid
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.training.transcoder_config import TranscoderTrainingConfig
from interpretability_workbench.training.transcoder_data import MLPStream, mlp_io
from interpretability_workbench.training.transcoders import data_scales, fold_scales, run_contexts


def small(**kw) -> TranscoderTrainingConfig:
    base = dict(layers=[0, 1, 2], d_tc=128, k=8, total_tokens=16_384, batch_size=512, context_size=64,
                model_batch_size=16, buffer_tokens=2048, lr=4e-3, eval_contexts=4, dead_after_tokens=4096)
    base.update(kw)
    return TranscoderTrainingConfig(**base)


def test_stream_yields_the_hooks_values(tiny_lm):
    ctx = make_contexts(tiny_lm.tokenizer, load_texts(None)[:40], 32, max_contexts=6)
    io_ = mlp_io(tiny_lm, ctx, [0, 2])
    res = run_with_cache(tiny_lm.model, ctx, ["blocks.0.ln2.hook_normalized", "blocks.2.ln2.hook_normalized",
                                              "blocks.0.hook_mlp_out", "blocks.2.hook_mlp_out"], stop_at_layer=False)
    want_x = torch.stack([res.cache["blocks.0.ln2.hook_normalized"][:, 1:],
                          res.cache["blocks.2.ln2.hook_normalized"][:, 1:]], 2).reshape(-1, 2, 64)
    torch.testing.assert_close(io_.x, want_x)
    torch.testing.assert_close(io_.y[:, 1], res.cache["blocks.2.hook_mlp_out"][:, 1:].reshape(-1, 64))
    # MLP output = the MLP applied to its input (the two hooks are the same MLP's two ends)
    mlp = tiny_lm.model.model.layers[2].mlp
    with torch.no_grad():
        torch.testing.assert_close(mlp(io_.x[:, 1]), io_.y[:, 1], atol=1e-5, rtol=1e-4)

    stream = MLPStream(tiny_lm, ctx, [0, 2], n_tokens=3 * 40, batch_size=40, model_batch_size=2, buffer_tokens=80)
    batches = list(stream)
    assert [b.x.shape for b in batches] == [torch.Size([40, 2, 64])] * 3
    # every served pair is a (token, layer) pair of the captured set, x and y still matched
    flat_x = io_.x.reshape(-1, 2 * 64)
    for b in batches:
        rows = torch.cdist(b.x.reshape(-1, 128), flat_x).argmin(1)
        torch.testing.assert_close(b.x, io_.x[rows])
        torch.testing.assert_close(b.y, io_.y[rows])
    assert stream.tokens_read >= 120 and stream.passes >= 1


@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_fold_scales_is_exact(arch):
    cfg = TranscoderConfig(d_in=16, d_tc=32, architecture=arch, k=4 if arch == "topk" else None, skip=True)
    tc = Transcoder(cfg)
    tc.reset_parameters(seed=3)
    with torch.no_grad():
        tc.W_skip.normal_()  # type: ignore[union-attr]
        tc.b_dec.normal_()
        tc.threshold.fill_(0.1)
    x = torch.randn(50, 16) * 7.0
    sx, sy = 3.5, 0.02
    want = tc(x / sx).y_hat * sy
    fold_scales(tc, sx, sy)
    torch.testing.assert_close(tc(x).y_hat, want, atol=1e-5, rtol=1e-5)
    scales = data_scales(type("B", (), {"x": torch.full((4, 2, 3), 2.0), "y": torch.ones(4, 2, 3)})())
    assert torch.allclose(scales.x, torch.tensor([2.0, 2.0])) and torch.allclose(scales.y, torch.ones(2))


def test_run_trains_registers_and_its_metrics_recompute(state):
    cfg = small()
    events = []
    state.bus.add_callback(events.append)
    rid = state.transcoder_training.start(cfg)
    rec = state.transcoder_training.wait(rid, timeout=900)
    assert rec.status == "done", rec.error
    m = rec.metrics
    assert rec.config["kind"] == "transcoders" and rec.config["hook_names"][2] == "blocks.2.ln2.hook_normalized"
    assert [type(e).__name__ for e in events if getattr(e, "run_id", None) == rid][-1] == "TrainingDone"
    assert any(type(e).__name__ == "TrainingProgress" and e.step > 0 for e in events)

    sset = state.transcoders.get(m["set_id"])
    assert sset.layers == [0, 1, 2] and sset.skip and sset.architecture == "topk"
    members = state.transcoders.members(m["set_id"])
    assert [x.id for x in members] == m["sae_ids"] and all(x.kind == "transcoder" for x in members)

    # the stored numbers, recomputed from the saved folders on the same held-out contexts
    lm = state.require_model()
    held = run_contexts(lm, cfg, None).held_out
    data = mlp_io(lm, held, cfg.layers)
    tcs = {x.layer: load_transcoder(x.path) for x in members}
    for i, layer in enumerate(cfg.layers):
        got = mlp_fvu(tcs[layer], data.x[:, i], data.y[:, i])
        assert got == pytest.approx(m["per_layer"][i]["held_out_fvu"], rel=1e-4, abs=1e-6)
        # trained: better than the best constant, and better than the untrained start
        assert got < 0.9
    ce = replacement_ce(lm.model, tcs, held)
    assert ce.recovered == pytest.approx(m["ce_loss_recovered"], rel=1e-4, abs=1e-6)

    # the SAE registry serves each member as a feature view reading the MLP input
    entry = state.saes.get(members[1].id)
    assert entry.sae.cfg.hook_name == "blocks.1.ln2.hook_normalized" and entry.sae.cfg.d_sae == 128
    torch.testing.assert_close(entry.sae.encode(data.x[:, 1]), tcs[1].encode(data.x[:, 1]))


def test_untrained_is_worse_than_trained(state, tiny_lm):
    """The FVU after training is below the FVU of the initialisation (the loss actually trains)."""
    from interpretability_workbench.training.transcoders import new_transcoders

    cfg = small(layers=[1], total_tokens=8192)
    lm = state.require_model()
    ctx = run_contexts(lm, cfg, None)
    sample = mlp_io(lm, ctx.train[:16], [1])
    scales = data_scales(sample)
    init = new_transcoders(cfg, lm, sample, scales)[0]
    fold_scales(init, float(scales.x[0]), float(scales.y[0]))
    held = mlp_io(lm, ctx.held_out, [1])
    before = mlp_fvu(init, held.x[:, 0], held.y[:, 0])
    rec = state.transcoder_training.wait(state.transcoder_training.start(cfg), timeout=600)
    after = rec.metrics["per_layer"][0]["held_out_fvu"]
    assert after < before - 0.05, (before, after)


def test_cancel_and_one_run_at_a_time(state):
    rid = state.transcoder_training.start(small(total_tokens=2_000_000))
    with pytest.raises(Conflict):
        state.transcoder_training.start(small())
    state.transcoder_training.cancel(rid)
    rec = state.transcoder_training.wait(rid, timeout=300)
    assert rec.status == "cancelled" and not state.transcoders.list()
    with pytest.raises(Conflict):
        state.transcoder_training.cancel(rid)
    with pytest.raises(Invalid):
        state.transcoder_training.start(small(layers=[0, 7]))


def test_jumprelu_set_exports_to_circuit_tracer(state):
    rec = state.transcoder_training.wait(state.transcoder_training.start(
        small(architecture="jumprelu", layers=[0, 1, 2], total_tokens=4096)), timeout=600)
    assert rec.status == "done", rec.error
    set_id = rec.metrics["set_id"]
    data = state.transcoders.export_circuit_tracer(set_id)
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == ["config.yaml", "layer_0.safetensors", "layer_1.safetensors", "layer_2.safetensors"]
    # read back by our circuit-tracer reader, and imported as a new set: same functions
    back = state.transcoders.import_zip(data, name="again")
    x = torch.randn(20, 64)
    for a, b in zip(state.transcoders.members(set_id), state.transcoders.members(back.set_id)):
        ta, tb = state.transcoders.member(a.id), state.transcoders.member(b.id)
        assert tb.cfg.architecture == "jumprelu" and tb.cfg.skip
        torch.testing.assert_close(ta(x).y_hat, tb(x).y_hat)
    topk = state.transcoder_training.wait(state.transcoder_training.start(small(total_tokens=2048)), timeout=600)
    with pytest.raises(Invalid, match="TopK"):
        state.transcoders.export_circuit_tracer(topk.metrics["set_id"])
    assert load_circuit_tracer  # the reader used by import_zip
