"""``bench/circuits.py``'s main path with tiny settings on the tiny random Llama: transcoders trained through
the product's run, five graphs traced, and the bench's one-backward-per-row baseline giving the same rows as
the batched attribution (an independent computation of the same edges)."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_circuits", ROOT / "bench" / "circuits.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_bench_main_path_on_tiny_model(tiny_llama_dir, tmp_path, capsys):
    bench = _bench()
    out = bench.main(["--model", str(tiny_llama_dir), "--home", str(tmp_path / "home"), "--tokens", "2048",
                      "--d-tc", "64", "--k", "4", "--batch-size", "256", "--context-size", "32",
                      "--model-batch-size", "8", "--max-feature-nodes", "24", "--batch-rows", "8",
                      "--validate-edges", "6", "--threads", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("median completeness") and "one-backward-per-row time / ours = " in lines[-1]
    assert float(lines[-1].rsplit("= ", 1)[1]) == pytest.approx(out["ratio"], abs=0.01)

    assert out["training"]["n_layers"] == 3 and len(out["training"]["sae_ids"]) == 3
    assert len(out["graphs"]) == len(bench.PROMPTS)
    for g in out["graphs"]:
        assert 0.0 <= g["replacement"] <= 1.0 and 0.0 <= g["completeness"] <= 1.0
        assert 0 < g["features"] <= 24 and g["active"] >= g["features"]
    # the baseline computed every row, one backward each, and they equal the batched rows
    base = out["baseline"]
    assert base["rows_done"] == base["rows_total"] == out["graphs"][0]["features"] + out["graphs"][0]["logits"]
    assert base["max_rel_diff"] < 1e-4
    assert out["median_completeness"] == pytest.approx(sorted(g["completeness"] for g in out["graphs"])[2])
    assert math.isfinite(out["ratio"]) and out["ratio"] > 0
