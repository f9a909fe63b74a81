"""Group patches of any size (no 16-feature cap) in every mode, and unsaved trial patches."""
from __future__ import annotations

import io
import zipfile

import pytest
import torch

from interpretability_workbench.errors import Conflict
from interpretability_workbench.model.hooks import forward_last_logits, run_with_cache
from interpretability_workbench.model.tokenize import encode_prompt
from interpretability_workbench.patches import inject

from .conftest import PROMPTS, make_sae

HOOK = "blocks.1.hook_resid_post"


def _resid(state, text: str) -> torch.Tensor:
    ids = encode_prompt(state.lm, text)
    return run_with_cache(state.lm.model, ids, [HOOK]).cache[HOOK][0]  # [pos d_model]


def _basis(sae, feats: list[int]) -> torch.Tensor:
    q, _ = torch.linalg.qr((sae.W_dec.detach()[feats].double() / sae.scale).T)
    return q.float()  # [d_model r]


def test_ablate_and_scale_take_any_number_of_features(state):
    sid, sae = make_sae(state, d_sae=96, seed=5)
    feats = list(range(0, 80, 2))  # 40 features, past the old cap of 16
    Q = _basis(sae, feats)
    with state.patches.original:
        x = _resid(state, PROMPTS[0])
    p = state.patches.create(sae_id=sid, features=feats, mode="ablate")
    assert p.rank == 40 and len(p.features) == 40 and "40 features" in p.name
    with state.patches.using([p.id]):
        after = _resid(state, PROMPTS[0])
    assert float((after @ Q).abs().max()) < 1e-4 * float((x @ Q).abs().max())  # span removed on every token
    # scale on an SAE at blocks.0.hook_resid_pre: its only writer is the embedding, so exactly x + (s - 1)·QQᵀx
    sid0, sae0 = make_sae(state, layer=0, kind="resid_pre", d_sae=96, seed=9)
    Q0 = _basis(sae0, feats)
    pre = "blocks.0.hook_resid_pre"
    ids = encode_prompt(state.lm, PROMPTS[0])
    with state.patches.original:
        e = run_with_cache(state.lm.model, ids, [pre]).cache[pre][0]
    s = state.patches.create(sae_id=sid0, features=feats, mode="scale", strength=0.5)
    assert s.rank == 40
    with state.patches.using([s.id]):
        scaled = run_with_cache(state.lm.model, ids, [pre]).cache[pre][0]
    assert torch.allclose(scaled, e - 0.5 * (e @ Q0) @ Q0.T, atol=1e-5)
    # more features than d_model: the span is the whole space (rank d_model), resid_post is zeroed
    many = state.patches.create(sae_id=sid, features=list(range(90)), mode="ablate")
    assert many.rank == state.lm.d_model
    with state.patches.using([many.id]):
        assert float(_resid(state, PROMPTS[1]).abs().max()) < 1e-4


def test_steer_and_clamp_groups(state):
    sid, sae = make_sae(state, d_sae=96, seed=6)
    feats = list(range(30))
    st = state.patches.create(sae_id=sid, features=feats, mode="steer", strength=0.5)
    with state.patches.original:
        x = _resid(state, PROMPTS[2])
    with state.patches.using([st.id]):
        y = _resid(state, PROMPTS[2])
    added = 0.5 * (sae.W_dec.detach()[feats].sum(0) / sae.scale)
    assert torch.allclose(y - x, added.expand_as(x), atol=1e-4)
    cl = state.patches.create(sae_id=sid, features=feats, mode="clamp", strength=0.25)
    with state.patches.using([cl.id]):
        z = _resid(state, PROMPTS[2])
    f = sae.encode(x)[:, feats]  # [pos n] on the original stream
    dirs = sae.W_dec.detach()[feats] / sae.scale  # [n d_model]
    assert cl.rank == 0 and torch.allclose(z, x + (0.25 - f) @ dirs, atol=1e-4)  # the splice, all 30 at once


def test_large_group_exports_as_peft(state, tiny_llama_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sid, _ = make_sae(state, d_sae=64, seed=7)
    p = state.patches.create(sae_id=sid, features=list(range(24)), mode="ablate", strength=0.7)
    ex = state.patch_transfer.export(p.id, "peft")
    with zipfile.ZipFile(io.BytesIO(ex.data)) as zf:
        zf.extractall(tmp_path)
    folder = next(tmp_path.rglob("adapter_config.json")).parent
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    ids = encode_prompt(state.lm, PROMPTS[0])
    _, patched, _, _ = state.inference.session().logits(PROMPTS[0], [p.id])
    with torch.no_grad():
        ref = model(input_ids=ids).logits[0, -1]
    assert torch.allclose(ref.softmax(-1), patched.softmax(-1), atol=1e-5)


def test_trial_applies_unsaved_drafts_exactly_and_leaves_nothing(state):
    sid, _ = make_sae(state, d_sae=32, seed=8)
    stored = state.patches.create(sae_id=sid, features=[4], mode="steer", strength=3.0)
    n_patches = len(state.patches.list())
    draft = state.patches.draft(sae_id=sid, features=[1, 2, 3], mode="ablate", strength=0.9)
    clamp = state.patches.draft(sae_id=sid, features=[6], mode="clamp", strength=-0.5)
    ids = encode_prompt(state.lm, PROMPTS[0])
    with state.patches.trial([draft, clamp]):
        tried = forward_last_logits(state.lm.model, ids)[0]
    assert len(state.patches.list()) == n_patches
    wrapped = [n for n, m in state.lm.model.named_modules() if isinstance(m, inject.WRAPPERS)]
    assert all(set(inject.find_wrapper(state.lm.model, n).entries) == {stored.id} for n in wrapped)
    assert state.patches.get(stored.id).enabled
    a = state.patches.create(sae_id=sid, features=[1, 2, 3], mode="ablate", strength=0.9)
    c = state.patches.create(sae_id=sid, features=[6], mode="clamp", strength=-0.5)
    with state.patches.using([a.id, c.id]):
        real = forward_last_logits(state.lm.model, ids)[0]
    assert torch.equal(tried, real)  # the trial is the patch machinery, not an approximation
    with pytest.raises(Conflict), state.patches.trial([state.patches.get(a.id)]):
        pass
