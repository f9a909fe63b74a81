"""The device/dtype policy's helpers and settings: where modules run and weights live, accelerate's
``max_memory`` form, Lightning placement, hook replacements cast back to the activation's device and dtype,
and the IWB_* settings that drive dispatch and pretrained imports."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from interpretability_workbench.model.hooks import hooks, run_with_cache
from interpretability_workbench.model.loader import ModelLoadError, load_model, parse_max_memory
from interpretability_workbench.model.placement import (STATS_DTYPE, execution_device, is_dispatched,
                                                        lightning_placement, memory_report, module_tensor,
                                                        to_stats)
from interpretability_workbench.model.tokenize import encode_prompt


def test_parse_max_memory_maps_gpu_indices_and_refuses_other_keys():
    assert parse_max_memory({"0": "20GiB", "cuda:1": "10GiB", "cpu": "64GiB", "disk": "1TB"}) == \
        {0: "20GiB", 1: "10GiB", "cpu": "64GiB", "disk": "1TB"}
    assert parse_max_memory({}) is None and parse_max_memory(None) is None
    with pytest.raises(ModelLoadError, match="not a device"):
        parse_max_memory({"gpu0": "1GiB"})


def test_invalid_device_map_is_a_load_error(tiny_llama_dir):
    with pytest.raises(ModelLoadError, match="invalid device_map"):
        load_model(str(tiny_llama_dir), device_map="everywhere")


def test_an_undispatched_model_runs_where_its_weights_are(tiny_lm):
    assert not tiny_lm.dispatched and not is_dispatched(tiny_lm.model)
    assert execution_device(tiny_lm.model.lm_head) == torch.device("cpu")
    assert module_tensor(tiny_lm.model.lm_head) is not None
    assert tiny_lm.layer_devices() == ["cpu"] * tiny_lm.n_layers
    (cpu,) = memory_report(tiny_lm.model, "model.layers", tiny_lm.device)
    assert cpu.device == "cpu" and cpu.layers == list(range(tiny_lm.n_layers))
    assert cpu.weight_bytes == sum(p.numel() * p.element_size() for p in tiny_lm.model.parameters())


def test_a_meta_weight_without_an_offload_map_is_refused():
    lin = nn.Linear(2, 2, device="meta")
    with pytest.raises(RuntimeError, match="meta device"):
        module_tensor(lin)


def test_lightning_trains_on_the_models_device():
    assert lightning_placement(torch.device("cpu")) == ("cpu", 1)
    assert lightning_placement(torch.device("cuda", 1)) == ("cuda", [1])
    assert lightning_placement(torch.device("cuda")) == ("cuda", [0])


def test_to_stats_is_the_one_cast_to_float32():
    x = torch.randn(3, 4, dtype=torch.bfloat16)
    y = to_stats(x)
    assert y.dtype == STATS_DTYPE == torch.float32 and torch.equal(y, x.float())


def test_hook_replacements_take_the_activations_dtype(tiny_llama_dir):
    """A float32 replacement returned into a bf16 model is cast back (the forward would fail otherwise), and
    a replacement equal to the activation leaves the logits bit-identical."""
    lm = load_model(str(tiny_llama_dir), device="cpu", dtype="bfloat16")
    ids = encode_prompt(lm, "Return the number of items")
    clean = run_with_cache(lm.model, ids, ["blocks.1.hook_resid_post"], stop_at_layer=False)
    seen = {}

    def same_in_float32(act: torch.Tensor) -> torch.Tensor:
        seen["dtype"] = act.dtype
        return act.float()

    with hooks(lm.model, {"blocks.1.hook_resid_post": same_in_float32, "blocks.0.hook_resid_pre": same_in_float32}):
        out = lm.model(input_ids=ids, use_cache=False).logits
    assert seen["dtype"] == torch.bfloat16 and out.dtype == torch.bfloat16
    assert torch.equal(out, clean.logits)


def test_settings_for_dispatch_and_pretrained_imports(monkeypatch, tmp_path):
    from interpretability_workbench.settings import Settings

    monkeypatch.setenv("IWB_DEVICE_MAP", "auto")
    monkeypatch.setenv("IWB_MAX_MEMORY", '{"0": "20GiB", "cpu": "64GiB"}')
    monkeypatch.setenv("IWB_SAE_REGISTRY", f"{tmp_path}/a.yaml, ~/b.yaml")
    monkeypatch.setenv("IWB_SAE_DOWNLOADS", "true")
    s = Settings(home=tmp_path)
    assert s.device_map == "auto" and s.max_memory == {"0": "20GiB", "cpu": "64GiB"} and s.sae_downloads
    assert s.sae_registry_files[0] == tmp_path / "a.yaml" and not str(s.sae_registry_files[1]).startswith("~")
    monkeypatch.setenv("IWB_SAE_REGISTRY", f'["{tmp_path}/c.yaml"]')
    assert Settings(home=tmp_path).sae_registry == [f"{tmp_path}/c.yaml"]
    monkeypatch.setenv("IWB_DEVICE_MAP", "everywhere")
    with pytest.raises(ValueError):
        Settings(home=tmp_path)


def test_post_model_takes_a_device_map(client):
    r = client.post("/api/model", json={"name": client.get("/api/model").json()["name"], "device_map": "auto"})
    assert r.status_code == 200, r.text
    body = r.json()
    # everything fits in memory: accelerate keeps the whole model on the CPU, undispatched
    assert body["layer_devices"] == ["cpu"] * body["n_layers"] and body["dispatched"] is False
    assert body["devices"][0]["device"] == "cpu" and body["devices"][0]["layers"] == list(range(body["n_layers"]))
    assert client.post("/api/model", json={"name": "x", "device_map": "everywhere"}).status_code == 422


def test_tf32_switch_is_reference_counted_and_restored(monkeypatch):
    """Nested and overlapping analysis blocks keep TF32 on until the last one ends, then restore the
    previous setting (the switch is a process-wide flag; CUDA's availability is faked to reach it on CPU)."""
    from interpretability_workbench.model.placement import tf32_matmuls

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    flags = torch.backends.cuda.matmul
    before = flags.allow_tf32
    flags.allow_tf32 = False
    try:
        with tf32_matmuls():
            assert flags.allow_tf32
            with tf32_matmuls():
                assert flags.allow_tf32
            assert flags.allow_tf32
            with tf32_matmuls(enabled=False):  # a block asking for full float32 does not switch it off for others
                assert flags.allow_tf32
        assert flags.allow_tf32 is False
    finally:
        flags.allow_tf32 = before
