"""Graph export: circuit-tracer / Neuronpedia JSON (validated by circuit-tracer's own schema and compared
with its own exporter when importable, else checked against its documented fields) and the workbench's
own JSON and safetensors round trips."""
from __future__ import annotations

import json

import pytest
import torch

from interpretability_workbench.circuits.attribution import AttributionOptions, attribute
from interpretability_workbench.circuits.export import (cantor_pairing, to_circuit_tracer_json, to_workbench_json,
                                                       write_graph_files)
from interpretability_workbench.circuits.graph import AttributionGraph
from interpretability_workbench.circuits.prune import prune_graph
from interpretability_workbench.errors import Invalid, NotFound

from .conftest import PROMPT_IDS
from .test_prune_scores import circuit_tracer_module

NODE_FIELDS = {"node_id": str, "feature": int, "layer": str, "ctx_idx": int, "feature_type": str, "token_prob": float,
               "is_target_logit": bool, "run_idx": int, "reverse_ctx_idx": int, "jsNodeId": str, "clerp": str}
FEATURE_TYPES = {"cross layer transcoder", "mlp reconstruction error", "embedding", "logit"}


@pytest.fixture
def graph(tiny_lm, transcoders) -> AttributionGraph:
    return attribute(tiny_lm.model, transcoders, PROMPT_IDS, tokenizer=tiny_lm.tokenizer, model_id=tiny_lm.model_id,
                     scan="tiny-llama/test-transcoders", options=AttributionOptions(max_feature_nodes=40))


def test_export_follows_the_documented_schema(graph, tmp_path):
    payload = to_circuit_tracer_json(graph, slug="tiny-test")
    assert set(payload) == {"metadata", "qParams", "nodes", "links"}
    meta = payload["metadata"]
    assert meta["slug"] == "tiny-test" and meta["scan"] == "tiny-llama/test-transcoders"
    assert meta["prompt_tokens"] == graph.prompt_tokens and len(meta["prompt_tokens"]) == graph.n_pos
    assert meta["schema_version"] == 1 and meta["node_threshold"] == 0.8
    assert payload["qParams"] == {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    ids = set()
    for n in payload["nodes"]:
        for key, typ in NODE_FIELDS.items():
            assert isinstance(n[key], typ), (key, n)
        assert n["feature_type"] in FEATURE_TYPES
        ids.add(n["node_id"])
    assert len(ids) == len(payload["nodes"])
    for e in payload["links"]:
        assert e["source"] in ids and e["target"] in ids and isinstance(e["weight"], float)
    kinds = [n["feature_type"] for n in payload["nodes"]]
    assert kinds.count("embedding") == graph.n_pos and kinds.count("logit") == graph.n_logits
    logits = [n for n in payload["nodes"] if n["feature_type"] == "logit"]
    assert logits[0]["is_target_logit"] and logits[0]["layer"] == str(graph.n_layers + 1)
    assert logits[0]["clerp"].startswith('Output "') and "(p=" in logits[0]["clerp"]
    feat = next(n for n in payload["nodes"] if n["feature_type"] == "cross layer transcoder")
    layer, index, pos = (int(v) for v in feat["node_id"].split("_"))
    assert feat["feature"] == cantor_pairing(layer, index) and feat["ctx_idx"] == pos
    assert feat["jsNodeId"] == f"{layer}_{index}-0" and feat["activation"] > 0
    # links are the kept edges between kept nodes, weights from the adjacency
    pr = prune_graph(graph)
    assert len(payload["links"]) <= int(pr.edge_mask.sum())
    path = write_graph_files(payload, tmp_path)
    assert json.loads(path.read_text()) == payload
    write_graph_files({**payload, "metadata": {**meta, "slug": "second"}}, tmp_path)
    write_graph_files(payload, tmp_path)  # replaces its own entry
    index = json.loads((tmp_path / "graph-metadata.json").read_text())
    assert [g["slug"] for g in index["graphs"]] == ["second", "tiny-test"]
    with pytest.raises(Invalid):
        to_circuit_tracer_json(graph, slug="../escape")


def test_export_opens_in_circuit_tracer_and_matches_its_exporter(graph, tiny_tokenizer_dir, tmp_path):
    models = circuit_tracer_module("circuit_tracer.frontend.graph_models")
    ct_graph = circuit_tracer_module("circuit_tracer.graph")
    files = circuit_tracer_module("circuit_tracer.utils.create_graph_files")
    if models is None or ct_graph is None or files is None:
        pytest.skip("circuit-tracer is not importable here (it pins transformers<=4.57)")
    from circuit_tracer.attribution.targets import LogitTarget
    from circuit_tracer.utils.tl_nnsight_mapping import UnifiedConfig

    ours = to_circuit_tracer_json(graph, slug="g", prompt="p")
    models.Model.model_validate(ours)  # circuit-tracer's own schema accepts it
    cfg = UnifiedConfig(n_layers=graph.n_layers, d_model=64, d_head=16, n_heads=4, d_mlp=128, d_vocab=512,
                        tokenizer_name=str(tiny_tokenizer_dir), model_name="tiny",
                        original_architecture="LlamaForCausalLM")
    theirs_graph = ct_graph.Graph(
        input_string="p", input_tokens=torch.tensor(graph.input_ids), active_features=graph.active_features,
        adjacency_matrix=graph.adjacency, cfg=cfg, selected_features=graph.selected_features,
        activation_values=graph.activation_values,
        logit_targets=[LogitTarget(s, t) for s, t in zip(graph.logit_strings, graph.logit_tokens)],
        logit_probabilities=graph.logit_probabilities, scan=graph.scan)
    files.create_graph_files(theirs_graph, "g", str(tmp_path))
    theirs = json.loads((tmp_path / "g.json").read_text())
    assert ours["metadata"] == theirs["metadata"] and ours["qParams"] == theirs["qParams"]
    # circuit-tracer's ids collide for error (layer, pos) and layer-0 feature (index=layer, pos): ours rename
    # the error node; compare everything else
    their_ids = [n["node_id"] for n in theirs["nodes"]]
    clash = {i for i in their_ids if their_ids.count(i) > 1}
    renamed = {n["node_id"] for n in ours["nodes"] if n["node_id"].endswith("_err")}
    assert {i.removesuffix("_err") for i in renamed} == clash
    by_id = {n["node_id"]: n for n in theirs["nodes"] if n["node_id"] not in clash}
    assert {n["node_id"] for n in ours["nodes"]} - renamed - clash == set(by_id)
    for n in ours["nodes"]:
        if n["node_id"] not in by_id:
            continue
        t = by_id[n["node_id"]]
        for key in n:
            if isinstance(n[key], float):
                assert n[key] == pytest.approx(t[key], rel=1e-5, abs=1e-6), key
            else:
                assert n[key] == t[key], key
    unclash = lambda i: i.removesuffix("_err")  # noqa: E731
    key = lambda e: (unclash(e["source"]), unclash(e["target"]))  # noqa: E731
    assert sorted(map(key, ours["links"])) == sorted(map(key, theirs["links"]))
    w: dict = {}
    for e in theirs["links"]:
        w.setdefault(key(e), []).append(e["weight"])
    for e in ours["links"]:
        assert any(e["weight"] == pytest.approx(x, rel=1e-6) for x in w[key(e)])


def test_workbench_json_and_folder_round_trips(graph, tmp_path):
    d = to_workbench_json(graph, prune_graph(graph))
    assert d["pruned"]["nodes"] and json.loads(json.dumps(d))["input_ids"] == graph.input_ids
    back = AttributionGraph.from_dict(json.loads(json.dumps(d)))
    torch.testing.assert_close(back.adjacency, graph.adjacency)
    assert back.logit_tokens == graph.logit_tokens and back.prompt_tokens == graph.prompt_tokens
    graph.save(tmp_path / "g")
    loaded = AttributionGraph.load(tmp_path / "g")
    assert torch.equal(loaded.adjacency, graph.adjacency) and torch.equal(loaded.selected_features, graph.selected_features)
    assert loaded.extra == graph.extra and loaded.scan == graph.scan
    with pytest.raises(NotFound):
        AttributionGraph.load(tmp_path / "nothing")
    ref = graph.node(graph.logit_start)
    assert ref.kind == "logit" and ref.index == graph.logit_tokens[0]
    f = graph.node(0)
    assert graph.feature_node_index(f.layer, f.pos, f.index) == 0
