"""Patch modes on the tiny Llama: exactness, composition, enable/disable, PEFT round trip."""
from __future__ import annotations

import io
import zipfile

import pytest
import torch

from interpretability_workbench.errors import Invalid, NotFound
from interpretability_workbench.model.tokenize import encode_prompt
from interpretability_workbench.model.hooks import forward_last_logits, run_with_cache

from .conftest import PROMPTS, make_sae, peft_roundtrip_diff


def _logits(state, text, patch_ids):
    return state.inference.session().logits(text, patch_ids)


def _full_patched(state, text, patch_ids):
    lm = state.lm
    ids = encode_prompt(lm, text)
    with state.patches.using(patch_ids):
        return forward_last_logits(lm.model, ids)[0]


def test_original_equals_plain_transformers_forward(state, tiny_llama_dir, sae_id):
    from transformers import AutoModelForCausalLM

    state.patches.create(sae_id=sae_id, features=[1], mode="steer", strength=8.0)
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    for text in PROMPTS:
        orig, patched, _, _ = _logits(state, text, None)
        ids = encode_prompt(state.lm, text)
        with torch.no_grad():
            ref = plain(input_ids=ids).logits[0, -1]
        assert torch.allclose(orig.softmax(-1), ref.softmax(-1), atol=1e-5)
        assert not torch.allclose(orig, patched)


def test_ablate_drives_feature_to_zero(state):
    sid, sae = make_sae(state, layer=1)
    lm = state.lm
    hook = "blocks.1.hook_resid_post"
    ids = encode_prompt(lm, PROMPTS[0])
    acts = sae.encode(run_with_cache(lm.model, ids, [hook]).cache[hook][0, 1:])  # [pos d_sae]
    feat = int(acts.max(0).values.argmax())
    assert float(acts[:, feat].max()) > 0.05
    p = state.patches.create(sae_id=sid, features=[feat], mode="ablate")
    after = sae.encode(run_with_cache(lm.model, ids, [hook]).cache[hook][0, 1:])
    assert float(after[:, feat].abs().max()) < 1e-4
    state.patches.update(p.id, enabled=False)
    again = sae.encode(run_with_cache(lm.model, ids, [hook]).cache[hook][0, 1:])
    assert torch.equal(again, acts)


def test_zero_steer_changes_nothing_and_disable_restores_exactly(state, sae_id):
    text = PROMPTS[1]
    base, _, _, _ = _logits(state, text, [])
    p = state.patches.create(sae_id=sae_id, features=[3], mode="steer", strength=0.0)
    _, patched, _, _ = _logits(state, text, [p.id])
    assert torch.equal(patched, base)
    state.patches.set_strength(p.id, 5.0)
    _, patched, _, _ = _logits(state, text, [p.id])
    assert (patched - base).abs().max() > 1e-3
    state.patches.update(p.id, enabled=False)
    live = forward_last_logits(state.lm.model, encode_prompt(state.lm, text))[0]
    assert torch.equal(live, base)
    state.patches.delete(p.id)
    assert type(state.lm.model.model.layers[1].mlp.down_proj).__name__ == "Linear"
    with pytest.raises(NotFound):
        state.patches.get(p.id)


def test_patches_compose_and_live_path_equals_full_forward(state):
    sid, sae = make_sae(state, layer=1)
    sid2, _ = make_sae(state, layer=2, seed=1)
    a = state.patches.create(sae_id=sid, features=[0, 5], mode="ablate")
    s = state.patches.create(sae_id=sid2, features=[2], mode="steer", strength=3.0)
    c = state.patches.create(sae_id=sid2, features=[4], mode="clamp", strength=2.0)
    sc = state.patches.create(sae_id=sid, features=[7], mode="scale", strength=2.5)
    text = PROMPTS[2]
    for ids in ([a.id], [s.id], [c.id], [sc.id], [s.id, c.id], [a.id, s.id, c.id, sc.id]):
        sess = state.inference.session()
        _, skip, _, layer = sess.logits(text, ids)
        full = _full_patched(state, text, ids)
        assert torch.allclose(skip, full, atol=1e-5), ids
        state.patches.set_strength(s.id, 1.5)  # cached original + resid reused after a strength change
        _, skip2, _, _ = sess.logits(text, ids)
        assert torch.allclose(skip2, _full_patched(state, text, ids), atol=1e-5)
        state.patches.set_strength(s.id, 3.0)
    # steer and clamp at layer 2 start from block 2; ablate touches the embedding
    assert state.inference.session().logits(text, [s.id, c.id])[3] == 2
    assert state.inference.session().logits(text, [a.id])[3] == 0
    # two steers on the same module add
    s2 = state.patches.create(sae_id=sid2, features=[6], mode="steer", strength=-2.0)
    base = _logits(state, text, [])[0]
    d1 = _logits(state, text, [s.id])[1]
    both = _logits(state, text, [s.id, s2.id])[1]
    assert not torch.allclose(d1, both)
    assert not torch.allclose(base, both)


def test_clamp_holds_the_feature(state):
    sid, sae = make_sae(state, layer=1, arch="standard")
    p = state.patches.create(sae_id=sid, features=[4], mode="clamp", strength=1.25)
    lm = state.lm
    hook = "blocks.1.hook_resid_post"
    ids = encode_prompt(lm, PROMPTS[0])
    x_new = run_with_cache(lm.model, ids, [hook]).cache[hook][0]  # [pos d_model]
    with state.patches.using([]):
        x = run_with_cache(lm.model, ids, [hook]).cache[hook][0]
    f = sae.encode(x)[:, 4]
    # the splice: x' = x + (v - f(x)) W_dec[4], error term kept
    assert torch.allclose(x_new, x + (1.25 - f)[:, None] * sae.W_dec[4], atol=1e-5)
    fired = f > 0  # where the latent is live its activation is now exactly v (tied encoder, unit rows)
    assert bool(fired.any())
    assert torch.allclose(sae.encode(x_new)[fired, 4], torch.full_like(f[fired], 1.25), atol=1e-4)
    with pytest.raises(Invalid):
        state.patch_transfer.export(p.id, "peft")
    ex = state.patch_transfer.export(p.id, "native")
    assert "clamp" in ex.note and "no PEFT form" in ex.note


def test_peft_export_reproduces_patched_logits(state, tiny_llama_dir, tmp_path):
    """ablate, scale and steer exported as PEFT adapters give the workbench's patched logits (fp32, 1e-4)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sid, _ = make_sae(state, layer=1)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    peft_model = None
    exports = {}
    for mode, strength, feats in (("ablate", 1.0, [2, 9, 11]), ("scale", 3.0, [2, 9, 11]), ("steer", 6.0, [2])):
        p = state.patches.create(sae_id=sid, features=feats, mode=mode, strength=strength, enabled=False)
        ex = exports[mode] = (p.id, state.patch_transfer.export(p.id, "peft"))
        with zipfile.ZipFile(io.BytesIO(ex[1].data)) as zf:
            zf.extractall(tmp_path)
        folder = str(tmp_path / p.id)
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(base, folder, adapter_name=mode).eval()
        else:
            peft_model.load_adapter(folder, adapter_name=mode)
        peft_model.set_adapter(mode)
        for text in PROMPTS:
            orig, ours, _, _ = _logits(state, text, [p.id])
            with torch.no_grad():
                theirs = peft_model(input_ids=encode_prompt(state.lm, text)).logits[0, -1]
            assert (ours - theirs).abs().max() <= 1e-4, mode
            assert (ours - orig).abs().max() > 1e-3, mode
    # an exported adapter imports back as a patch with the same effect
    pid, ex = exports["steer"]
    imported = state.patch_transfer.import_zip(ex.data)
    assert imported.mode == "adapter"
    ours = _logits(state, PROMPTS[0], [pid])[1]
    again = _logits(state, PROMPTS[0], [imported.id])[1]
    assert (ours - again).abs().max() <= 1e-4


def test_patches_persist_and_reapply_on_model_load(state):
    sid, _ = make_sae(state, layer=1)
    p = state.patches.create(sae_id=sid, features=[1], mode="steer", strength=4.0)
    text = PROMPTS[0]
    before = _logits(state, text, [p.id])[1]
    state.load_model(state.settings.model)  # a fresh model object: stored patches are re-applied
    assert state.patches.status(p.id)[0]
    after = _logits(state, text, [p.id])[1]
    assert torch.allclose(before, after, atol=1e-6)


def test_import_refuses_escaping_members(state):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil/adapter_config.json", "{}")
    with pytest.raises(Invalid, match="escape"):
        state.patch_transfer.import_zip(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x/adapter_model.bin", b"pickle")
    with pytest.raises(Invalid, match="not allowed"):
        state.patch_transfer.import_zip(buf.getvalue())


@pytest.mark.parametrize("family", ["gpt2", "neox"])
def test_other_families_live_path_and_ablation(tmp_path, tiny_model_dirs, family):
    """GPT-2 (Conv1D writers, learned positions, biases) and NeoX (parallel residual)."""
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(Settings(home=tmp_path / "h", model=str(tiny_model_dirs[family]), device="cpu", dtype="float32"))
    try:
        st.load_model(st.settings.model)
        sid, sae = make_sae(st, layer=1)
        a = st.patches.create(sae_id=sid, features=[3, 4], mode="ablate")
        s = st.patches.create(sae_id=sid, features=[5], mode="steer", strength=4.0)
        for ids in ([a.id], [s.id]):
            _, skip, _, _ = _logits(st, PROMPTS[0], ids)
            assert torch.allclose(skip, _full_patched(st, PROMPTS[0], ids), atol=1e-5)
        hook = "blocks.1.hook_resid_post"
        x = run_with_cache(st.lm.model, encode_prompt(st.lm, PROMPTS[0]), [hook]).cache[hook][0]
        with st.patches.using([a.id]):
            x = run_with_cache(st.lm.model, encode_prompt(st.lm, PROMPTS[0]), [hook]).cache[hook][0]
        assert float((x @ sae.W_dec[[3, 4]].T).abs().max()) < 1e-4  # exactly projected out
        # PEFT reload where PEFT can hold the delta: a resid_post ablation on these biased models needs a
        # lora_bias on the embedding too, which PEFT has not; steer (a lora_B.bias on a Linear / Conv1D)
        # and an ablation at mlp_out (one biased writer) it can
        with pytest.raises(Invalid, match="native"):
            st.patch_transfer.export(a.id, "peft")
        diff, moved = peft_roundtrip_diff(st, s.id, tiny_model_dirs[family], tmp_path / "steer")
        assert diff <= 1e-4 and moved > 1e-3, (family, diff, moved)
        mid, _ = make_sae(st, layer=1, kind="mlp_out", seed=3)
        m = st.patches.create(sae_id=mid, features=[1, 2], mode="ablate", enabled=False)
        diff, moved = peft_roundtrip_diff(st, m.id, tiny_model_dirs[family], tmp_path / "mlp")
        assert diff <= 1e-4 and moved > 1e-3, (family, diff, moved)
    finally:
        st.close()


@pytest.mark.parametrize("layer,kind", [(2, "resid_pre"), (1, "mlp_out"), (1, "attn_out")])
def test_ablate_at_other_hooks_is_exact(state, layer, kind):
    sid, sae = make_sae(state, layer=layer, kind=kind)
    p = state.patches.create(sae_id=sid, features=[0, 1], mode="ablate")
    hook = f"blocks.{layer}.hook_{kind}"
    ids = encode_prompt(state.lm, PROMPTS[1])
    with state.patches.using([p.id]):
        x = run_with_cache(state.lm.model, ids, [hook]).cache[hook][0]
    with state.patches.using([]):
        x0 = run_with_cache(state.lm.model, ids, [hook]).cache[hook][0]
    assert float((x @ sae.W_dec[[0, 1]].T).abs().max()) < 1e-4
    assert float((x0 @ sae.W_dec[[0, 1]].T).abs().max()) > 1e-3
