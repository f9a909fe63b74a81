"""Sweeps: one run trains a grid of SAEs at several hooks from one forward per batch, and each of them is the
SAE its configuration trains alone (same seed, same data order) within fp32 tolerance; the run detail
reports every member; the grid is validated."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.training.config import TrainingConfig


def weights(state, sae_id: str) -> dict[str, torch.Tensor]:
    state.saes._cache.clear()
    return {k: v.clone() for k, v in state.saes.get(sae_id).sae.state_dict().items()}


def test_each_sweep_member_equals_its_solo_run(state, client, make_config) -> None:
    base = dict(total_tokens=8 * 512, buffer_tokens=700, ce_eval_contexts=2, checkpoint_every=0,
                hook_names=["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"])
    sweep = make_config(**base, sweep={"d_sae": [64, 128], "k": [4, 8]})
    members = sweep.members
    assert len(members) == 8 and [m.label for m in members[:2]] == [
        "topk blocks.0.hook_resid_post d_sae=64 k=4", "topk blocks.0.hook_resid_post d_sae=64 k=8"]
    row = state.training.wait(state.training.start(sweep), timeout=600)
    assert row.status == "done", row.error
    got = row.metrics["members"]
    assert [(p["hook_name"], p["d_sae"], p["k"]) for p in got] == [(m.hook_name, m.d_sae, m.k) for m in members]
    assert len(set(row.metrics["sae_ids"])) == 8
    for i in (0, 3, 6):  # a few members alone: hook 0 and 2, both widths, both k
        solo = make_config(**{**base, **members[i].solo_overrides()})
        alone = state.training.wait(state.training.start(solo), timeout=300)
        assert alone.status == "done", alone.error
        wa, ws = weights(state, alone.metrics["sae_ids"][0]), weights(state, got[i]["sae_id"])
        for k in wa:
            torch.testing.assert_close(ws[k], wa[k], rtol=1e-4, atol=1e-5, msg=f"member {i} {k}")
        assert got[i]["held_out_fvu"] == pytest.approx(alone.metrics["members"][0]["held_out_fvu"], rel=1e-4)
        assert got[i]["ce_loss_recovered"] == pytest.approx(alone.metrics["members"][0]["ce_loss_recovered"],
                                                            rel=1e-3, abs=1e-4)
    detail = client.get(f"/api/training/{row.id}").json()
    assert detail["n_members"] == 8 and len(detail["members"]) == 8
    pt = detail["members"][5]
    assert {"l0", "held_out_fvu", "ce_loss_recovered", "sae_id", "hook_name", "d_sae", "k", "label"} <= set(pt)
    assert state.saes.row(pt["sae_id"]).name == members[5].label


def test_sweep_request_over_rest_and_validation(client) -> None:
    body = dict(layer=1, d_sae=64, k=4, total_tokens=1024, batch_size=512, context_size=64, checkpoint_every=0,
                eval_tokens=256, ce_eval_contexts=0, analyze=False, accelerator="cpu")
    bad = client.post("/api/training", json={**body, "sweep": {"d_sae": [64], "k": [4, 128]}})
    assert bad.status_code == 422 and "k <= d_sae" in bad.json()["detail"]
    assert client.post("/api/training", json={**body, "sweep": {"architectures": ["jumprelu"]}}).status_code == 422
    assert client.post("/api/training", json={**body, "sweep": {"k": [4, 4]}}).status_code == 422
    ok = client.post("/api/training", json={**body, "sweep": {"architectures": ["topk", "standard"],
                                                              "l1_coefficient": [0.1, 1.0]}})
    assert ok.status_code == 202, ok.text
    run = client.get(f"/api/training/{ok.json()['run_id']}").json()
    cfg = TrainingConfig.from_dict(run["config"])
    assert [(m.architecture, m.k, m.l1_coefficient) for m in cfg.members] == [
        ("topk", 4, 5.0), ("standard", 4, 0.1), ("standard", 4, 1.0)]
    assert run["n_members"] == 3


def test_runs_recorded_before_sweeps_still_read(client, state) -> None:
    """A run row written by the previous version (metrics with per_hook and top-level numbers) is listed
    with its members completed from the run's config."""
    cfg = {"hook_names": ["blocks.1.hook_resid_post"], "architecture": "topk", "d_sae": 64, "k": 4,
           "total_tokens": 1024}
    state.training.runs.create("run_old", state.model.lm.model_id, cfg, status="done")
    state.training.runs.update("run_old", metrics={
        "sae_ids": ["sae_x"], "held_out_fvu": 0.2, "l0": 4.0,
        "per_hook": [{"hook_name": "blocks.1.hook_resid_post", "sae_id": "sae_x", "held_out_fvu": 0.2,
                      "explained_variance": 0.8, "l0": 4.0, "dead_fraction": 0.0}]})
    detail = client.get("/api/training/run_old").json()
    (m,) = detail["members"]
    assert (m["architecture"], m["d_sae"], m["k"], m["held_out_fvu"], m["sae_id"]) == ("topk", 64, 4, 0.2, "sae_x")
