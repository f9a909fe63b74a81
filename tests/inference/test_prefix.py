"""The live path's prefix reuse: a patched result from the first position the patches change (on the original
run's cropped keys and values) equals the full patched forward, for every patch mode and several first-change
positions, on the tiny Llama and GPT-2. Features are built so that the first change lands where the test
says (a decoder direction orthogonal to everything the writers put out before it)."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.model.hook_map import residual_writers
from interpretability_workbench.model.hook_names import hook_name
from interpretability_workbench.model.hooks import forward_last_logits, run_with_cache
from interpretability_workbench.model.tokenize import encode_prompt
from interpretability_workbench.patches.lora import ModuleDelta, embedding_writers

from .conftest import make_sae

TEXT = "Return the number of items in the list and then open the file to read every line of it again"
ATOL, RTOL = 1e-5, 1e-4
"""float32 agreement of two forwards that differ only in matmul shapes (logits of the tiny models are ~0.5)."""


@pytest.fixture(params=["llama", "gpt2"])
def arch_state(request, tmp_path, tiny_model_dirs):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    d = str(tiny_model_dirs[request.param])
    st = WorkbenchState(Settings(home=tmp_path / "home", model=d, device="cpu", dtype="float32"))
    st.load_model(d)
    yield st
    st.shutdown()
    st.close()


def _ids(st):
    return encode_prompt(st.lm, TEXT)


def _full(st, pids):
    with st.patches.using(pids):
        return forward_last_logits(st.lm.model, _ids(st))[0]


def _orth_unit(vectors: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unit vector along the part of ``target [d]`` orthogonal to the span of ``vectors [m d]`` (float64)."""
    t = target.double()
    if vectors.shape[0]:
        q, _ = torch.linalg.qr(vectors.double().T)
        t = t - q @ (q.T @ t)
    assert float(t.norm()) > 1e-3 * float(target.double().norm())
    return (t / t.norm()).float()


def _module_io(st, paths: list[str], *, inputs: bool = False) -> dict[str, torch.Tensor]:
    """Outputs (or first inputs) ``[pos dim]`` of the modules at ``paths`` on the original run."""
    got: dict[str, torch.Tensor] = {}
    model = st.lm.model
    handles = []
    for p in paths:
        m = model.get_submodule(p)
        if inputs:
            handles.append(m.register_forward_pre_hook(lambda _m, a, p=p: got.__setitem__(p, a[0][0].detach())))
        else:
            handles.append(m.register_forward_hook(lambda _m, _a, o, p=p: got.__setitem__(p, o[0].detach())))
    try:
        with st.patches.original, torch.no_grad():
            model(input_ids=_ids(st), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return got


def _resid_post(st, layer: int) -> torch.Tensor:
    name = hook_name(layer, "resid_post")
    with st.patches.original:
        return run_with_cache(st.lm.model, _ids(st), [name]).cache[name][0]  # [pos d_model]


def _feature_firing_from(st, layer: int, p: int) -> str:
    """An SAE at resid_post ``layer`` whose feature 0 is zero before position ``p`` and fires at ``p``."""
    sid, sae = make_sae(st, layer=layer)
    h = _resid_post(st, layer)
    d = _orth_unit(h[:p], h[p])
    with torch.no_grad():
        sae.W_enc[:, 0] = d
        sae.W_dec[0] = d
        sae.b_enc[0] = -1e-3 * float(h[p] @ d)
    f = sae.encode(h)[:, 0]
    assert float(f[:p].abs().max() if p else 0.0) == 0.0 and float(f[p]) > 0
    return sid


def _direction_silent_before(st, layer: int, p: int) -> str:
    """An SAE at resid_post ``layer`` whose feature 0's direction is orthogonal to every residual write (the
    embeddings and the attention/MLP outputs of blocks 0..layer) before position ``p``, but not at ``p``."""
    model = st.lm.model
    paths = embedding_writers(model) + [w for lyr in range(layer + 1) for w in residual_writers(model, lyr)]
    outs = _module_io(st, paths)
    before = torch.cat([outs[q][:p] for q in paths])  # [p·writers d_model]
    at_p = sum(outs[q][p] for q in paths)
    d = _orth_unit(before, at_p)
    sid, sae = make_sae(st, layer=layer)
    with torch.no_grad():
        sae.W_dec[0] = d
    return sid


def _check(st, sess, pids, *, layer, position):
    r = sess.logits_detail(TEXT, pids)
    assert (r.from_layer, r.from_position) == (layer, position)
    torch.testing.assert_close(r.patched, _full(st, pids), atol=ATOL, rtol=RTOL)
    return r


@pytest.mark.parametrize("p", [1, 5, -1])
def test_clamp_at_zero_reruns_from_the_first_firing_position(arch_state, p):
    st = arch_state
    n = _ids(st).shape[1]
    p = p % n
    sid = _feature_firing_from(st, 2, p)
    patch = st.patches.create(sae_id=sid, features=[0], mode="clamp", strength=0.0)
    sess = st.inference.session()
    r = _check(st, sess, [patch.id], layer=2, position=p)
    assert float((r.patched - r.original).abs().max()) > 0  # the clamp did something
    run = sess._run
    st.patches.set_strength(patch.id, 1.5)  # any other value changes every position
    _check(st, sess, [patch.id], layer=2, position=0)
    st.patches.set_strength(patch.id, 0.0)
    _check(st, sess, [patch.id], layer=2, position=p)
    assert sess._run is run  # slider moves reuse the original run


def test_clamp_of_a_silent_feature_changes_nothing(arch_state):
    st = arch_state
    sid, sae = make_sae(st, layer=1)
    with torch.no_grad():
        sae.b_enc[0] = -1e6  # never fires
    patch = st.patches.create(sae_id=sid, features=[0], mode="clamp", strength=0.0)
    r = st.inference.session().logits_detail(TEXT, [patch.id])
    assert r.from_position == _ids(st).shape[1] and torch.equal(r.patched, r.original)


@pytest.mark.parametrize("mode", ["ablate", "scale"])
@pytest.mark.parametrize("p", [1, 3, 8])
def test_projection_patches_rerun_from_the_first_write_along_the_direction(arch_state, mode, p):
    st = arch_state
    sid = _direction_silent_before(st, 1, p)
    patch = st.patches.create(sae_id=sid, features=[0], mode=mode, strength=1.0 if mode == "ablate" else 3.0)
    sess = st.inference.session()
    r = _check(st, sess, [patch.id], layer=0, position=p)  # the embeddings are writers: from block 0
    assert float((r.patched - r.original).abs().max()) > 1e-6
    st.patches.set_strength(patch.id, 0.5 if mode == "ablate" else -1.0)
    _check(st, sess, [patch.id], layer=0, position=p)


def test_projection_along_a_generic_direction_reruns_everything(arch_state):
    st = arch_state
    sid, _ = make_sae(st, layer=1)
    patch = st.patches.create(sae_id=sid, features=[3], mode="ablate")
    _check(st, st.inference.session(), [patch.id], layer=0, position=0)


def test_steer_changes_every_position_and_zero_changes_none(arch_state):
    st = arch_state
    sid, _ = make_sae(st, layer=1)
    patch = st.patches.create(sae_id=sid, features=[2], mode="steer", strength=5.0)
    sess = st.inference.session()
    _check(st, sess, [patch.id], layer=1, position=0)
    st.patches.set_strength(patch.id, 0.0)
    r = sess.logits_detail(TEXT, [patch.id])
    assert r.from_position == _ids(st).shape[1] and torch.equal(r.patched, r.original)


@pytest.mark.parametrize("p", [2, 6])
def test_adapter_reruns_from_the_first_input_it_reads(arch_state, p):
    """An imported low-rank adapter on block 1's MLP out projection whose A is orthogonal to that module's
    inputs before position p."""
    st = arch_state
    path = residual_writers(st.lm.model, 1)[1]
    x = _module_io(st, [path], inputs=True)[path]  # [pos d_in]
    a = _orth_unit(x[:p], x[p])[None]  # [1 d_in]
    out_dim = int(st.lm.model.get_submodule(path)(x[:1]).shape[-1])
    b = 0.05 * torch.randn(out_dim, 1)  # the scale of the layer's own weights, as a trained adapter's
    patch = st.patches.create_adapter([ModuleDelta(path, "linear", a, b)], name="orth", strength=1.0)
    sess = st.inference.session()
    r = _check(st, sess, [patch.id], layer=1, position=p)
    assert float((r.patched - r.original).abs().max()) > 1e-6


def test_composed_patches_start_at_the_earliest_change_and_new_patches_rescan(arch_state):
    st = arch_state
    n = _ids(st).shape[1]
    clamp = st.patches.create(sae_id=_feature_firing_from(st, 2, n - 3), features=[0], mode="clamp", strength=0.0)
    ablate = st.patches.create(sae_id=_direction_silent_before(st, 1, 4), features=[0], mode="ablate")
    sess = st.inference.session()
    _check(st, sess, [clamp.id], layer=2, position=n - 3)
    _check(st, sess, [clamp.id, ablate.id], layer=0, position=4)
    run = sess._run
    late = st.patches.create(sae_id=_feature_firing_from(st, 1, n - 2), features=[0], mode="clamp", strength=0.0)
    _check(st, sess, [late.id], layer=1, position=n - 2)  # a patch made after the original run: scanned anew
    assert sess._run is not run
    _check(st, sess, [clamp.id, late.id], layer=1, position=n - 3)


def test_prefix_reuse_off_gives_the_same_result(arch_state):
    st = arch_state
    n = _ids(st).shape[1]
    patch = st.patches.create(sae_id=_feature_firing_from(st, 1, n // 2), features=[0], mode="clamp", strength=0.0)
    on = st.inference.session().logits_detail(TEXT, [patch.id])
    off_sess = st.inference.session()
    off_sess.reuse_prefix = False
    off = off_sess.logits_detail(TEXT, [patch.id])
    assert on.from_position == n // 2 and off.from_position == 0
    torch.testing.assert_close(on.patched, off.patched, atol=ATOL, rtol=RTOL)
