"""A model dispatched by accelerate (``device_map='auto'`` under a ``max_memory`` budget), on CPU: the budget
keeps the embedding and the first block in memory and offloads the other blocks and the head to disk, so
their weights are ``meta`` between forwards and loaded by accelerate's hooks — the same mechanism that runs
CPU-offloaded blocks on a GPU. Hooks, stop-at-layer, patches (deltas on each module's execution device),
PEFT export, analysis, per-text activations, contrast, provenance and training must give what the same model
gives undispatched (float32: equal within 1e-5 unless stated)."""
from __future__ import annotations

import io
import zipfile

import pytest
import torch

from interpretability_workbench.model.hooks import forward_last_logits, run_with_cache
from interpretability_workbench.model.placement import execution_device, module_tensor
from interpretability_workbench.model.tokenize import encode_prompt
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder

from .loop import NEGATIVE, POSITIVE, PROMPT


def _budget(model_dir) -> str:  # also used by tests/gpu
    """CPU memory for the embedding plus 2.6 blocks of the tiny Llama (float32): accelerate keeps room for the
    largest offloaded module, so the embedding and block 0 stay in memory and the rest goes to disk."""
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    nbytes = lambda mod: sum(p.numel() * 4 for p in mod.parameters())  # noqa: E731
    return f"{int(nbytes(m.model.embed_tokens) + 2.6 * nbytes(m.model.layers[0])) // 1000}KB"


def _state(home, model_dir, device: str = "cpu", **kw):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(Settings(home=home, model=str(model_dir), device=device, dtype="float32", **kw))
    st.load_model(st.settings.model)
    return st


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_llama_dir):
    """(undispatched state, dispatched state) of the tiny Llama."""
    plain = _state(tmp_path_factory.mktemp("plain"), tiny_llama_dir)
    disp = _state(tmp_path_factory.mktemp("disp"), tiny_llama_dir, device_map="auto",
                  max_memory={"cpu": _budget(tiny_llama_dir)})
    yield plain, disp
    for st in (plain, disp):
        st.shutdown()
        st.close()


def _register(state, layer: int, seed: int, arch: str = "topk") -> str:
    lm = state.lm
    cfg = SAEConfig(d_in=lm.d_model, d_sae=48, architecture=arch, k=6 if arch == "topk" else None,
                    hook_name=f"blocks.{layer}.hook_resid_post", model_id=lm.model_id, context_size=64)
    sae = SparseAutoencoder(cfg)
    sae.reset_parameters(seed=seed)
    with torch.no_grad():
        sae.b_enc.fill_(-0.02)
    return state.saes.register(sae, source="imported")


def test_the_budget_splits_the_model_between_memory_and_disk(pair):
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app

    _, disp = pair
    lm = disp.lm
    assert lm.dispatched and lm.device == torch.device("cpu")
    where = lm.layer_devices()
    assert where[0] == "cpu" and where[-1] == "disk", where
    offloaded = lm.model.model.layers[2].mlp.down_proj
    assert offloaded.weight.device.type == "meta" and execution_device(offloaded) == torch.device("cpu")
    with TestClient(create_app(disp.settings, disp, load_model=False)) as c:
        info = c.get("/api/model").json()
    assert info["dispatched"] is True and info["layer_devices"] == where
    devs = {d["device"]: d for d in info["devices"]}
    assert set(devs) == {"cpu", "disk"}
    assert devs["cpu"]["total_bytes"] > devs["cpu"]["free_bytes"] > 0 and devs["cpu"]["used_bytes"] > 0
    assert devs["disk"]["total_bytes"] is None and devs["disk"]["weight_bytes"] > 0
    assert sorted(devs["cpu"]["layers"] + devs["disk"]["layers"]) == list(range(lm.n_layers))
    assert devs["cpu"]["weight_bytes"] + devs["disk"]["weight_bytes"] == info["memory_bytes"]


def test_offloaded_weights_are_read_where_they_are(pair):
    plain, disp = pair
    for path in ("model.layers.2.mlp.down_proj", "lm_head", "model.embed_tokens"):
        ours = module_tensor(disp.lm.model.get_submodule(path))
        assert torch.equal(ours.cpu(), plain.lm.model.get_submodule(path).weight.detach().cpu()), path


def test_forwards_hooks_and_stop_at_layer_match(pair):
    plain, disp = pair
    ids = encode_prompt(plain.lm, PROMPT)
    names = ["blocks.0.hook_resid_post", "blocks.2.hook_mlp_out"]
    ref = run_with_cache(plain.lm.model, ids, names, stop_at_layer=False)
    got = run_with_cache(disp.lm.model, ids, names, stop_at_layer=False)
    torch.testing.assert_close(got.logits, ref.logits, rtol=0, atol=1e-5)
    for n in names:
        torch.testing.assert_close(got.cache[n], ref.cache[n], rtol=0, atol=1e-5)
    stopped = run_with_cache(disp.lm.model, ids, ["blocks.1.hook_resid_post"])
    assert stopped.logits is None
    resid = run_with_cache(disp.lm.model, ids, ["blocks.2.hook_resid_pre"]).cache["blocks.2.hook_resid_pre"]
    skipped = forward_last_logits(disp.lm.model, ids, from_layer=2, resid_pre=resid)
    torch.testing.assert_close(skipped[0], ref.logits[0, -1], rtol=0, atol=1e-5)


def test_patches_and_their_peft_export_match(pair, tiny_llama_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    plain, disp = pair
    out = {}
    for name, st in (("plain", plain), ("disp", disp)):
        sid = _register(st, 2, seed=11)
        res = {}
        for mode, strength, feats in (("ablate", 1.0, [1, 4]), ("scale", 2.5, [1, 4]), ("steer", 5.0, [3]),
                                      ("clamp", 2.0, [5])):
            p = st.patches.create(sae_id=sid, features=feats, mode=mode, strength=strength, enabled=False)
            res[mode] = (p.id, st.inference.session().logits(PROMPT, [p.id])[1])
        out[name] = res
    for mode in out["plain"]:
        torch.testing.assert_close(out["disp"][mode][1], out["plain"][mode][1], rtol=0, atol=1e-5)
    # the dispatched model's PEFT export, loaded by peft on an ordinary copy of the model
    pid, ours = out["disp"]["ablate"]
    ex = disp.patch_transfer.export(pid, "peft")
    with zipfile.ZipFile(io.BytesIO(ex.data)) as zf:
        zf.extractall(tmp_path)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).to(plain.lm.device).eval()
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / pid)).eval()
    with torch.no_grad():
        theirs = peft_model(input_ids=encode_prompt(plain.lm, PROMPT)).logits[0, -1]
    assert float((ours - theirs).abs().max()) <= 1e-4


def test_analysis_text_contrast_and_provenance_match(pair):
    plain, disp = pair
    got = {}
    for name, st in (("plain", plain), ("disp", disp)):
        ids = [_register(st, layer, seed=20 + layer) for layer in range(3)]
        st.features.analyze(ids[2], n_tokens=630)
        page = st.features.list_features(ids[2], offset=0, limit=48, sort="index")
        text = st.features.activations(ids[2], PROMPT, top_k=3)
        con = st.contrast.contrast(ids[2], POSITIVE, NEGATIVE, "max", 5)
        g = st.provenance.build(ids[2], 2, depth=2, prompt=PROMPT)
        got[name] = (
            [(r["density"], round(r["max_activation"], 4)) for r in page["items"]],
            [[(e["index"], round(e["value"], 4)) for e in row] for row in text.per_token],
            [(f.index, round(f.effect_size, 4)) for f in con.features],
            sorted((e.source, e.target, round(e.weight, 4)) for e in g.edges),
            round(g.validation.correlation or 0.0, 4),
        )
    for a, b in zip(got["plain"], got["disp"]):
        assert a == b


def test_training_runs_on_a_dispatched_model(pair):
    from interpretability_workbench.training.config import TrainingConfig

    _, disp = pair
    cfg = TrainingConfig(hook_names=["blocks.2.hook_resid_post"], d_sae=64, k=4, total_tokens=2048, batch_size=256,
                         context_size=64, checkpoint_every=0, eval_tokens=512, ce_eval_contexts=1, analyze=False)
    run_id = disp.training.start(cfg)
    disp.training.wait(run_id)
    rec = disp.training.get(run_id)
    assert rec.status == "done", rec
    sid = rec.sae_id
    assert 0.0 < disp.saes.row(sid).metrics["held_out_fvu"] < 2.0
