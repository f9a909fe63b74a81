"""A model dispatched across the GPU and CPU memory with ``max_memory`` (blocks past the budget offloaded to CPU and
run on the GPU by accelerate's hooks): the same checks as tests/placement/test_dispatch.py (disk offload on CPU),
against the same model on the GPU undispatched."""
from __future__ import annotations

import pytest
import torch

from placement.test_dispatch import (_budget, _state, test_analysis_text_contrast_and_provenance_match,  # noqa: F401
                                     test_forwards_hooks_and_stop_at_layer_match,
                                     test_offloaded_weights_are_read_where_they_are,
                                     test_patches_and_their_peft_export_match, test_training_runs_on_a_dispatched_model)

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_llama_dir):
    plain = _state(tmp_path_factory.mktemp("plain"), tiny_llama_dir, "cuda")
    disp = _state(tmp_path_factory.mktemp("disp"), tiny_llama_dir, "cuda", device_map="auto",
                  max_memory={"0": _budget(tiny_llama_dir), "cpu": "4GiB"})
    yield plain, disp
    for st in (plain, disp):
        st.shutdown()
        st.close()


def test_half_the_model_runs_from_cpu_memory(pair):
    from fastapi.testclient import TestClient

    from interpretability_workbench.model.placement import execution_device
    from interpretability_workbench.server.app import create_app

    _, disp = pair
    lm = disp.lm
    assert lm.dispatched and lm.device == torch.device("cuda", 0)
    where = lm.layer_devices()
    assert where[0] == "cuda:0" and where[-1] == "cpu", where
    offloaded = lm.model.model.layers[-1].mlp.down_proj
    assert offloaded.weight.device.type == "meta" and execution_device(offloaded) == torch.device("cuda", 0)
    with TestClient(create_app(disp.settings, disp, load_model=False)) as c:
        info = c.get("/api/model").json()
    devs = {d["device"]: d for d in info["devices"]}
    assert {"cuda:0", "cpu"} <= set(devs) and devs["cuda:0"]["free_bytes"] > 0 and devs["cpu"]["layers"]
    assert sorted(devs["cuda:0"]["layers"] + devs["cpu"]["layers"]) == list(range(lm.n_layers))
