"""CircuitService and TranscoderRegistry on the tiny Llama with hand-built transcoders: a job's graph equals
``attribute`` run directly, its view is the pruned graph, interventions (one node, a supernode) match the
model with the edit hooked in by hand, a node sent to the Patch console is an exact clamp, the feature view
of a transcoder drives the feature analysis (top contexts recomputed from the MLP input), zips round-trip."""
from __future__ import annotations

import threading

import pytest
import torch

from interpretability_workbench.circuits.attribution import attribute
from interpretability_workbench.circuits.intervene import validate_graph
from interpretability_workbench.circuits.prune import prune_graph
from interpretability_workbench.circuits.scores import graph_scores
from interpretability_workbench.circuits.service import CircuitSettings, NodeSetting
from interpretability_workbench.errors import Invalid, NotFound
from interpretability_workbench.model.hooks import run_with_cache
from interpretability_workbench.model.tokenize import encode_text

PROMPT = "The quick brown fox jumps over the lazy dog because"


@pytest.fixture
def hand_set(state, transcoders):
    return state.transcoders.register_set(transcoders, name="hand-built")


def _settings(set_id: str, **kw) -> CircuitSettings:
    base = dict(set_id=set_id, max_feature_nodes=16384, batch_size=16, validate_edges=8, validate_freeze="direct")
    base.update(kw)
    return CircuitSettings(**base)


def _traced(state, hand_set, **kw):
    events = []
    state.bus.add_callback(events.append)
    rec = state.circuits.start(PROMPT, _settings(hand_set.set_id, **kw))
    rec = state.circuits.wait(rec.id, timeout=600)
    assert rec.status == "done", rec.error
    return rec, [e for e in events if getattr(e, "job_id", None) == rec.id]


def _hooked_logits(lm, tcs, ids, edits):
    """Last-position logits with ``(layer, pos, feature, value)`` edits added to the MLP outputs by hand:
    ``(value - a) W_dec[f]`` where ``a`` is the clean activation (encoded here from the MLP input)."""
    hooks = {}
    for layer, pos, feat, value in edits:
        def fn(_m, args, out, layer=layer, pos=pos, feat=feat, value=value):
            tc = tcs[layer]
            a = tc.encode(args[0][0, pos])[feat]
            out = out.clone()
            out[0, pos] += (value - a) * tc.W_dec[feat]
            return out
        hooks.setdefault(layer, []).append(fn)
    handles = [lm.model.model.layers[layer].mlp.register_forward_hook(f) for layer, fs in hooks.items() for f in fs]
    try:
        with torch.no_grad():
            return lm.model(input_ids=ids[None]).logits[0, -1]
    finally:
        for h in handles:
            h.remove()


def test_job_graph_view_and_check(state, hand_set, transcoders):
    rec, events = _traced(state, hand_set)
    statuses = [e.status for e in events]
    assert statuses[0] == "running" and statuses[-1] == "done" and all(e.kind == "circuit" for e in events)
    assert any(e.total > 0 and 0 < e.done <= e.total for e in events if e.status == "running")
    lm = state.require_model()
    ids = encode_text(lm, PROMPT).ids[0]
    g = state.circuits.graph(rec.id)
    assert g.input_ids == ids.tolist()
    direct = attribute(lm.model, transcoders, ids, options=_settings(hand_set.set_id).options())
    torch.testing.assert_close(g.adjacency, direct.adjacency, atol=1e-5, rtol=1e-4)
    s = rec.summary
    sc = graph_scores(g)
    assert s["replacement_score"] == pytest.approx(sc.replacement) and s["completeness_score"] == pytest.approx(sc.completeness)
    # the check in the local replacement model measures the edges themselves
    v = s["validation"]
    assert v["freeze"] == "direct" and len(v["checks"]) == 8 and v["pearson"] == pytest.approx(1.0, abs=1e-3)
    for c in v["checks"]:
        assert c["measured"] == pytest.approx(c["predicted"], rel=1e-3, abs=1e-4)

    view = state.circuits.view(rec.id, 0.6, 0.9)["graph"]
    pr = prune_graph(g, 0.6, 0.9)
    assert [n["node"] for n in view["nodes"]] == pr.node_mask.nonzero().flatten().tolist()
    kinds = {n["kind"] for n in view["nodes"]}
    assert {"token", "logit"} <= kinds
    members = {m.layer: m.id for m in state.transcoders.members(hand_set.set_id)}
    for n in view["nodes"]:
        if n["kind"] == "feature":
            assert n["sae_id"] == members[n["layer"]]
            assert n["activation"] == pytest.approx(float(g.activation_values[g.selected_features[n["node"]]]))
    for e in view["edges"]:
        assert bool(pr.edge_mask[e["target"], e["source"]])
        assert e["weight"] == pytest.approx(float(g.adjacency[e["target"], e["source"]]))
    loose = state.circuits.view(rec.id, 0.95, 0.99)["graph"]
    assert len(loose["nodes"]) >= len(view["nodes"])


def test_intervene_one_node_and_a_supernode(state, hand_set, transcoders):
    rec, _ = _traced(state, hand_set, validate_edges=0)
    g = state.circuits.graph(rec.id)
    lm = state.require_model()
    ids = torch.tensor(g.input_ids)
    acts = g.feature_activations()
    order = acts.argsort(descending=True).tolist()
    a, b = order[0], order[1]
    ra, rb = g.node(a), g.node(b)
    out = state.circuits.intervene(rec.id, [NodeSetting(a, 0.0)], top_k=5)
    with torch.no_grad():
        clean = lm.model(input_ids=ids[None]).logits[0, -1]
    p0 = torch.softmax(clean, -1)
    for t in out["before"]:
        assert t["probability"] == pytest.approx(float(p0[t["token_id"]]), abs=1e-6)
    p1 = torch.softmax(_hooked_logits(lm, transcoders, ids, [(ra.layer, ra.pos, ra.index, 0.0)]), -1)
    for t in out["after"]:
        assert t["probability"] == pytest.approx(float(p1[t["token_id"]]), abs=1e-6)
    assert out["kl"] == pytest.approx(float((p0 * (p0.log() - p1.log())).sum()), abs=1e-6)
    # predicted: the direct edges to the logit nodes (the edge is the whole activation's effect)
    for ln in out["logit_nodes"]:
        assert ln["predicted"] == pytest.approx(-float(g.adjacency[ln["node"], a]), abs=1e-6)
    # a supernode: both at once, steered to twice their activation
    va, vb = 2 * float(acts[a]), 2 * float(acts[b])
    sup = state.circuits.intervene(rec.id, [NodeSetting(a, va), NodeSetting(b, vb)], top_k=5)
    p2 = torch.softmax(_hooked_logits(lm, transcoders, ids, [(ra.layer, ra.pos, ra.index, va),
                                                             (rb.layer, rb.pos, rb.index, vb)]), -1)
    for t in sup["after"]:
        assert t["probability"] == pytest.approx(float(p2[t["token_id"]]), abs=1e-6)
    tok = g.token_start
    with pytest.raises(Invalid, match="token node"):
        state.circuits.intervene(rec.id, [NodeSetting(tok, 0.0)])
    with pytest.raises(NotFound):
        state.circuits.intervene(rec.id, [NodeSetting(g.n_nodes + 5, 0.0)])


def test_target_token_is_a_logit_node_and_its_probability_moves(state, hand_set, transcoders):
    lm = state.require_model()
    ids = encode_text(lm, PROMPT).ids[0]
    with torch.no_grad():
        p0 = torch.softmax(lm.model(input_ids=ids[None]).logits[0, -1], -1)
    # the least probable single-token word: never among the most probable logit nodes
    cands = [t for t in p0.argsort().tolist() if len(lm.tokenizer(lm.tokenizer.decode([t]), add_special_tokens=False)["input_ids"]) == 1
             and lm.tokenizer(lm.tokenizer.decode([t]), add_special_tokens=False)["input_ids"][0] == t]
    tid = cands[0]
    text = lm.tokenizer.decode([tid])
    rec, _ = _traced(state, hand_set, validate_edges=0, max_n_logits=3, target=text)
    g = state.circuits.graph(rec.id)
    assert g.logit_tokens[-1] == tid and len(g.logit_tokens) <= 4
    assert rec.summary["target"]["token_id"] == tid
    assert rec.summary["target"]["probability"] == pytest.approx(float(p0[tid]), rel=1e-4, abs=1e-9)
    a = int(g.feature_activations().argmax())
    r = g.node(a)
    out = state.circuits.intervene(rec.id, [NodeSetting(a, 0.0)])
    p1 = torch.softmax(_hooked_logits(lm, transcoders, ids, [(r.layer, r.pos, r.index, 0.0)]), -1)
    node = next(ln for ln in out["logit_nodes"] if ln["token_id"] == tid)
    assert node["before"] == pytest.approx(float(p0[tid]), rel=1e-4, abs=1e-9)
    assert node["after"] == pytest.approx(float(p1[tid]), rel=1e-4, abs=1e-9)
    with pytest.raises(Invalid, match="tokens"):
        state.circuits.start(PROMPT, _settings(hand_set.set_id, target=" quick brown fox jumps"))


def test_node_to_patch_console_is_an_exact_clamp(state, hand_set):
    rec, _ = _traced(state, hand_set, validate_edges=0)
    g = state.circuits.graph(rec.id)
    af = g.active_features
    lone = None
    for i in range(g.n_features):  # a feature node whose feature fires at no other position of the prompt
        ref = g.node(i)
        same = (af[:, 0] == ref.layer) & (af[:, 2] == ref.index)
        if int(same.sum()) == 1:
            lone = i
            break
    assert lone is not None
    cfg, exact, note = state.circuits.send_to_patch(rec.id, lone, mode="clamp", value=0.0)
    assert exact and "exactly the circuit intervention" in note
    assert cfg.mode == "clamp" and cfg.sae_id == state.transcoders.sae_id_for(hand_set.set_id, g.node(lone).layer)
    lm = state.require_model()
    with state.patches.using([cfg.id]), torch.no_grad():
        patched = lm.model(input_ids=torch.tensor([g.input_ids])).logits[0, -1]
    out = state.circuits.intervene(rec.id, [NodeSetting(lone, 0.0)], top_k=10)
    p = torch.softmax(patched, -1)
    for t in out["after"]:
        assert t["probability"] == pytest.approx(float(p[t["token_id"]]), abs=1e-6)
    steer, exact2, _ = state.circuits.send_to_patch(rec.id, lone, mode="steer", value=2.0)
    assert steer.mode == "steer" and not exact2 and steer.target_modules == ["model.layers.%d.mlp.down_proj" % g.node(lone).layer]
    with pytest.raises(Invalid, match="transcoder"):
        state.patches.create(sae_id=cfg.sae_id, features=[1], mode="ablate")


def test_cancelled_job_and_errors(state, hand_set):
    from interpretability_workbench.store.db import new_id

    cid = new_id("circ")
    settings = _settings(hand_set.set_id)
    state.circuits.repo.create(cid, state.require_model().model_id, hand_set.set_id, PROMPT, {})
    events = []
    state.bus.add_callback(events.append)
    stop = threading.Event()
    stop.set()
    state.circuits._job(cid, PROMPT, settings, stop)
    assert state.circuits.get(cid).status == "cancelled"
    assert [e.status for e in events if getattr(e, "job_id", None) == cid][-1] == "cancelled"
    with pytest.raises(NotFound):
        state.circuits.start(PROMPT, _settings("tcs_nope"))
    with pytest.raises(Invalid):
        state.circuits.start("word " * 400, settings)


def test_transcoder_features_analyse_like_sae_features(state, hand_set, transcoders):
    sid = state.transcoders.sae_id_for(hand_set.set_id, 1)
    state.features.analyze(sid, n_tokens=2000)
    lm, sae = state.features._sae_for_model(sid)
    contexts = state.features.analysis_contexts(lm, sae, None, 2000)
    rows = state.features.queries.list(sid, limit=5, sort="-max_act")["items"]
    assert rows
    for row in rows[:3]:
        d = state.features.queries.get(sid, row["index"])
        top = d["top_contexts"][0]
        res = run_with_cache(lm.model, contexts[top["context"]][None], ["blocks.1.ln2.hook_normalized"])
        x = res.cache["blocks.1.ln2.hook_normalized"][0, top["position"]]
        assert float(transcoders[1].encode(x)[row["index"]]) == pytest.approx(top["max"], rel=1e-4, abs=1e-6)
        # direct logit effect of what the feature writes (through the MLP output into the residual)
        eff = (lm.model.model.norm.weight * transcoders[1].W_dec[row["index"]]) @ lm.model.lm_head.weight.T
        assert d["top_positive_logits"][0]["id"] == int(eff.argmax())
        assert d["top_positive_logits"][0]["value"] == pytest.approx(float(eff.max()), rel=1e-4)


def test_registry_zip_round_trips(state, hand_set, transcoders):
    data = state.transcoders.export_saelens(hand_set.set_id)
    back = state.transcoders.import_zip(data, name="copy")
    x = torch.randn(7, 64)
    for layer, m in enumerate(state.transcoders.members(back.set_id)):
        tc = state.transcoders.member(m.id)
        assert tc.layer == layer and tc.cfg.architecture == transcoders[layer].cfg.architecture
        torch.testing.assert_close(tc(x).y_hat, transcoders[layer](x).y_hat)
    assert {s.id for s in state.transcoders.list()} == {hand_set.set_id, back.set_id}
    # the TopK members refuse circuit-tracer's layout (it reads ReLU and JumpReLU only)
    with pytest.raises(Invalid, match="TopK"):
        state.transcoders.export_circuit_tracer(hand_set.set_id)
    state.transcoders.delete(back.set_id)
    assert [s.id for s in state.transcoders.list()] == [hand_set.set_id]
    assert all(state.saes.exists(m) for m in hand_set.sae_ids) and not any(state.saes.exists(m) for m in back.sae_ids)
    # SAEs only for provenance: transcoders are not upstream candidates
    lm = state.require_model()
    assert state.saes.of_model_below(lm.model_id, 3) == []


def test_validation_in_the_real_model(state, hand_set, transcoders):
    """With nothing frozen the check measures total effects; it agrees with validate_graph run directly."""
    rec, _ = _traced(state, hand_set, validate_freeze="none", validate_edges=6)
    g = state.circuits.graph(rec.id)
    rep = validate_graph(state.require_model().model, transcoders, g, n_edges=6, freeze="none",
                         prune=prune_graph(g, 0.8, 0.98))
    v = rec.summary["validation"]
    assert v["freeze"] == "none" and len(v["checks"]) == len(rep.checks)
    for got, want in zip(v["checks"], rep.checks):
        assert got["measured"] == pytest.approx(want.measured, rel=1e-4, abs=1e-6)
