from __future__ import annotations

import json

from interpretability_workbench.cli import main

from .conftest import make_sae


def test_cli_infer_with_adhoc_patch_and_contrast(state, settings, monkeypatch, capsys, tmp_path):
    sid, _ = make_sae(state, layer=1)
    monkeypatch.setenv("IWB_HOME", str(settings.home))
    monkeypatch.setenv("IWB_MODEL", settings.model)
    monkeypatch.setenv("IWB_DEVICE", "cpu")
    assert main(["infer", "--text", "Return the value", "--top-k", "3", "--json",
                 "--patch-spec", f"{sid}:2:steer:6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["patch_ids"]) == 1 and out["kl"] > 0 and len(out["patched"]) == 3
    assert state.patches.list() == []  # the ad-hoc patch is not kept
    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("Open the file and return\nCompute the sum and return\n")
    neg.write_text("Open the file and read\nCompute the sum of the list\n")
    assert main(["contrast", "--sae", sid, "--positive", str(pos), "--negative", str(neg), "--top-n", "4",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["features"]) == 4
    assert main(["infer", "--text", "x", "--patch-spec", "bad"]) == 2
