"""Each table's repository: records round-trip, and the rules written once here hold (display label, sort
order, search, history thinning, start-up recovery)."""
from __future__ import annotations

import pytest

from interpretability_workbench.store.corpora import CorpusRecord, CorpusRepo
from interpretability_workbench.store.db import Database
from interpretability_workbench.store.features import AnalysedFeature, FeatureFilter, FeatureRepo
from interpretability_workbench.store.patches import PatchRepo
from interpretability_workbench.store.runs import RunRepo
from interpretability_workbench.store.saes import SAERecord, SAERepo


@pytest.fixture
def db(tmp_path):
    d = Database(tmp_path / "w.sqlite3")
    yield d
    d.close()


def test_runs_round_trip_history_thinning_and_interrupt(db):
    runs = RunRepo(db)
    rec = runs.create("run_a", "m", {"hook_names": ["h"], "total_tokens": 10})
    assert rec.status == "queued" and rec.config["total_tokens"] == 10 and rec.sae_ids == []
    runs.update("run_a", status="running", step=3, metrics={"sae_ids": ["s1", "s2"]})
    got = runs.get("run_a")
    assert (got.status, got.step, got.sae_ids) == ("running", 3, ["s1", "s2"])
    with pytest.raises(ValueError):
        runs.update("run_a", bogus=1)
    for step in range(1, 101):
        runs.add_metric("run_a", step, step * 10, {"fvu": 1 / step})
    hist = runs.history("run_a", limit=20)
    assert len(hist) <= 21 and hist[0].step == 1 and hist[-1].step == 100  # the last point always kept
    assert hist[-1].data == {"fvu": 0.01}
    runs.create("run_b", "m", {})
    assert runs.interrupt_live() == 2
    assert {r.status for r in runs.list()} == {"interrupted"}


def test_saes_round_trip_and_below(db):
    saes = SAERepo(db)
    for i, layer in enumerate((1, 3, 5)):
        saes.insert(SAERecord(id=f"s{i}", name=f"n{i}", model_id="m", hook_name=f"blocks.{layer}.hook_resid_post",
                              layer=layer, d_in=8, d_sae=16, architecture="topk", path=f"/p{i}", source="trained",
                              created_at=float(i), metrics={"l0": i}))
    assert saes.get("s1").metrics == {"l0": 1} and saes.get("nope") is None
    assert [r.id for r in saes.of_model_below("m", 5, exclude="s0")] == ["s1"]
    saes.update_metrics("s1", {"l0": 9})
    assert saes.get("s1").metrics == {"l0": 9}
    saes.delete("s1")
    assert [r.id for r in saes.list()] == ["s0", "s2"]


def test_features_label_rule_sort_search_and_recovery(db):
    repo = FeatureRepo(db)
    rows = [AnalysedFeature(i, f"auto {i}", density=0.1 * i, max_act=float(10 - i), mean_act=1.0,
                            top_tokens=[{"token": "ret" if i % 2 else "x", "id": i, "count": 1,
                                         "key": "ret" if i % 2 else "x"}], data={"i": i}) for i in range(5)]
    repo.upsert_analysed("s", rows)
    repo.set_user_fields("s", 2, label="mine", starred=True)
    assert repo.get("s", 2).display_label == "mine" and repo.get("s", 3).display_label == "auto 3"
    labels = repo.labels("s", [2, 3, 99])
    assert labels[2].label == "mine" and labels[3].top_tokens == ["ret"] and 99 not in labels
    page, total = repo.page("s", offset=0, limit=3, sort="-density", flt=FeatureFilter())
    assert total == 5 and [r.idx for r in page] == [4, 3, 2] and page[0].data is None  # summaries only
    page, total = repo.page("s", offset=0, limit=10, sort="index", flt=FeatureFilter(token_key="ret"))
    assert [r.idx for r in page] == [1, 3] and total == 2
    assert [r.idx for r in repo.page("s", offset=0, limit=10, sort="index", flt=FeatureFilter(starred=True))[0]] == [2]
    assert [r.idx for r in repo.page("s", offset=0, limit=10, sort="label", flt=FeatureFilter(text="MIN"))[0]] == [2]
    repo.upsert_analysed("s", [AnalysedFeature(2, "new auto", 0.5, 1.0, 1.0, [], {})])  # re-analysis
    assert repo.get("s", 2).label == "mine" and repo.get("s", 2).auto_label == "new auto"  # user label kept
    assert [r.idx for r in repo.iter_rows("s", chunk=2)] == [0, 1, 2, 3, 4]
    repo.start_analysis("s", {"corpus": "default"})
    assert repo.fail_running("stopped") == 1 and repo.get_analysis("s").data == {"error": "stopped"}
    repo.delete_sae("s")
    assert repo.count("s") == 0 and repo.get_analysis("s") is None


def test_patches_and_corpora_round_trip(db):
    patches = PatchRepo(db)
    cfg = {"id": "p1", "name": "a", "mode": "steer", "sae_id": "s", "features": [1], "strength": 2.0,
           "enabled": True, "created_at": 1.0, "updated_at": 1.0}
    patches.insert(cfg)
    patches.save({**cfg, "strength": 5.0})
    assert patches.list() == [{**cfg, "strength": 5.0}]
    patches.delete("p1")
    assert patches.list() == []
    corpora = CorpusRepo(db)
    rec = CorpusRecord("c1", "a.txt", "/x/a.txt", 3, None, 10, 1.0)
    corpora.insert(rec)
    assert corpora.get("c1") == rec and corpora.list() == [rec]
