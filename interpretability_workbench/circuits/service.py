"""CircuitService: attribution graphs of prompts as background jobs, stored with their prompt and settings.

A job (``start``) encodes the prompt by the one tokenisation rule, traces the graph with a transcoder set
under the model lock with every patch off (``scope``), prunes and scores it, checks its strongest edges by
intervention in the real model, saves the graph folder under the workspace and the row in the ``circuits``
table. Progress goes out as ``job`` events (``kind: "circuit"``; rows of the adjacency done / total), and a
job can be cancelled between backward batches. ``trace`` runs the same synchronously (CLI, bench).

On a stored graph: ``view`` (pruned at any thresholds), ``intervene`` (the output distribution before and
after setting feature nodes — one or a supernode — in the real model), ``send_to_patch`` (a clamp or steer
patch on the node's transcoder feature in the Patch console) and exports (circuit-tracer / Neuronpedia JSON,
the workbench's own JSON).
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from collections import OrderedDict
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch

from ..errors import Conflict, Invalid, NotFound
from ..events import JobProgress, Publish
from ..model.handle import ModelHandle
from ..model.tokenize import encode_text
from ..patches.config import PatchConfig
from ..store.circuits import CircuitRecord, CircuitRepo
from ..store.db import new_id
from .attribution import AttributionOptions, attribute
from .export import to_circuit_tracer_json, to_workbench_json
from .graph import AttributionGraph
from .intervene import Intervention, intervene_logits, validate_graph
from .prune import prune_graph
from .registry import TranscoderRegistry
from .scores import graph_scores
from .view import LabelLookup, graph_view, predicted_logit_changes

log = logging.getLogger(__name__)
JOB_KIND = "circuit"
FREEZES = ("none", "attention", "direct")


@dataclass
class CircuitSettings:
    """How a graph is traced and checked (stored with it)."""

    set_id: str
    """Transcoder set to trace with."""
    max_feature_nodes: int = 512
    """Feature nodes that get rows, most influential first (the adjacency grows with their square)."""
    max_n_logits: int = 10
    """Most logit nodes."""
    desired_logit_prob: float = 0.95
    """Logit nodes: most probable tokens until their cumulative probability reaches this."""
    target: str | None = None
    """A next token the graph must explain (one token, e.g. " Paris" with its leading space): a logit node
    whatever its probability; None: only the most probable tokens."""
    batch_size: int = 64
    """Targets per backward pass."""
    node_threshold: float = 0.8
    """Default pruning: nodes kept until they hold this share of the influence on the logits."""
    edge_threshold: float = 0.98
    """Default pruning: edges kept until they hold this share of the edge influence."""
    validate_edges: int = 20
    """Strongest feature edges checked by ablating their source in the real model (0: no check)."""
    validate_freeze: str = "attention"
    """What the check holds fixed: none (the real model), attention (patterns, circuit-tracer's default) or
    direct (the local replacement model: measures the edge itself)."""

    def __post_init__(self) -> None:
        if not self.set_id:
            raise ValueError("give a transcoder set (set_id)")
        if not 1 <= self.max_feature_nodes <= 16384:
            raise ValueError("max_feature_nodes must be in 1..16384")
        if not 1 <= self.max_n_logits <= 100 or not 0 < self.desired_logit_prob <= 1:
            raise ValueError("max_n_logits must be in 1..100 and desired_logit_prob in (0, 1]")
        if self.target is not None and not self.target:
            raise ValueError("target must be a non-empty token (or omitted)")
        if not 1 <= self.batch_size <= 1024:
            raise ValueError("batch_size must be in 1..1024")
        if not 0 <= self.node_threshold <= 1 or not 0 <= self.edge_threshold <= 1:
            raise ValueError("node_threshold and edge_threshold must be in [0, 1]")
        if not 0 <= self.validate_edges <= 200:
            raise ValueError("validate_edges must be in 0..200")
        if self.validate_freeze not in FREEZES:
            raise ValueError(f"validate_freeze must be one of {', '.join(FREEZES)}")

    def options(self, target_tokens: tuple[int, ...] = ()) -> AttributionOptions:
        """``target_tokens``: the id of ``target`` (see ``target_token_id``)."""
        return AttributionOptions(max_n_logits=self.max_n_logits, desired_logit_prob=self.desired_logit_prob,
                                  target_tokens=target_tokens, batch_size=self.batch_size,
                                  max_feature_nodes=self.max_feature_nodes)


def target_token_id(tokenizer: Any, target: str) -> int:
    """The id of ``target``, which must encode to exactly one token (no special tokens)."""
    ids = list(tokenizer(target, add_special_tokens=False)["input_ids"])
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise Invalid(f"target {target!r} is {len(ids)} tokens {pieces!r}; give a single token "
                      "(often with its leading space, e.g. ' Paris'), or its first piece")
    return int(ids[0])


class NodeSetting(NamedTuple):
    node: int
    """Feature node (its index in the graph)."""
    value: float
    """New activation (0 ablates)."""


class _Cancelled(Exception):
    pass


class _Job(NamedTuple):
    thread: threading.Thread
    cancel: threading.Event


PatchCreate = Callable[..., PatchConfig]
"""``PatchManager.create(sae_id=, features=, mode=, strength=, name=)``."""


class CircuitService:
    def __init__(self, repo: CircuitRepo, transcoders: TranscoderRegistry, model: ModelHandle, publish: Publish,
                 scope: AbstractContextManager[Any], root: Path, *, labels: LabelLookup, create_patch: PatchCreate,
                 max_tokens: int = 128) -> None:
        """``scope``: held around every forward (the model lock, every patch off); ``labels``: feature labels
        of a registry entry; ``create_patch``: the Patch console's create."""
        self.repo, self.transcoders, self.model, self.publish = repo, transcoders, model, publish
        self.scope, self.root, self.labels, self.create_patch = scope, Path(root), labels, create_patch
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._graphs: OrderedDict[str, AttributionGraph] = OrderedDict()
        n = repo.interrupt_live()
        if n:
            log.warning("marked %d circuit job(s) failed: the workbench stopped while they ran", n)

    # queries ---------------------------------------------------------------------------
    def list(self) -> list[CircuitRecord]:
        return self.repo.list()

    def get(self, circuit_id: str) -> CircuitRecord:
        rec = self.repo.get(circuit_id)
        if rec is None:
            raise NotFound(f"circuit {circuit_id!r} not found; GET /api/circuits lists them")
        return rec

    def graph(self, circuit_id: str) -> AttributionGraph:
        rec = self.get(circuit_id)
        if rec.status != "done" or not rec.path:
            raise Conflict(f"circuit {circuit_id} is {rec.status}; its graph is there once it is done")
        with self._lock:
            g = self._graphs.get(circuit_id)
            if g is not None:
                self._graphs.move_to_end(circuit_id)
                return g
        g = AttributionGraph.load(rec.path)
        with self._lock:
            self._graphs[circuit_id] = g
            while len(self._graphs) > 4:
                self._graphs.popitem(last=False)
        return g

    def view(self, circuit_id: str, node_threshold: float | None = None, edge_threshold: float | None = None,
             max_edges: int = 2000) -> dict[str, Any]:
        rec = self.get(circuit_id)
        out: dict[str, Any] = {"graph": None}
        if rec.status == "done":
            g = self.graph(circuit_id)
            nt = rec.settings.get("node_threshold", 0.8) if node_threshold is None else node_threshold
            et = rec.settings.get("edge_threshold", 0.98) if edge_threshold is None else edge_threshold
            members = {m.layer: m.id for m in self.transcoders.saes.of_set(rec.set_id)}
            out["graph"] = {**graph_view(g, prune_graph(g, nt, et), members, self.labels, max_edges=max_edges),
                            "node_threshold": nt, "edge_threshold": et}
        return out

    # jobs --------------------------------------------------------------------------------
    def _prepare(self, prompt: str, settings: CircuitSettings) -> tuple[Any, torch.Tensor, tuple[int, ...]]:
        """The fitted set, the prompt's ids ``[pos]`` and the target's token id (none without a target)."""
        fitted = self.transcoders.fitted(settings.set_id)
        ids = encode_text(fitted.lm, prompt, self.max_tokens).ids[0]
        if ids.shape[0] < 2:
            raise Invalid("the prompt needs at least one token after BOS")
        target = () if settings.target is None else (target_token_id(fitted.lm.tokenizer, settings.target),)
        return fitted, ids, target

    def start(self, prompt: str, settings: CircuitSettings) -> CircuitRecord:
        """Queue a job tracing ``prompt``; returns its row at once (409 while another runs)."""
        fitted, _, _ = self._prepare(prompt, settings)
        cid = new_id("circ")
        with self._lock:
            busy = next((k for k, j in self._jobs.items() if j.thread.is_alive()), None)
            if busy:
                raise Conflict(f"circuit {busy} is being traced; one at a time — cancel it "
                               f"(POST /api/circuits/{busy}/cancel) or wait")
            rec = self.repo.create(cid, fitted.lm.model_id, settings.set_id, prompt, asdict(settings))
            cancel = threading.Event()
            t = threading.Thread(target=self._job, args=(cid, prompt, settings, cancel), name=f"circuit-{cid}",
                                 daemon=True)
            self._jobs[cid] = _Job(t, cancel)
            t.start()
        return rec

    def trace(self, prompt: str, settings: CircuitSettings) -> CircuitRecord:
        """The same as a job, in the calling thread; returns the finished row."""
        fitted, _, _ = self._prepare(prompt, settings)
        cid = new_id("circ")
        self.repo.create(cid, fitted.lm.model_id, settings.set_id, prompt, asdict(settings))
        self._job(cid, prompt, settings, threading.Event())
        return self.get(cid)

    def cancel(self, circuit_id: str) -> None:
        rec = self.get(circuit_id)
        with self._lock:
            job = self._jobs.get(circuit_id)
        if job is None or not job.thread.is_alive() or rec.status not in ("queued", "running"):
            raise Conflict(f"circuit {circuit_id} is not being traced (status {rec.status})")
        job.cancel.set()

    def wait(self, circuit_id: str, timeout: float | None = None) -> CircuitRecord:
        with self._lock:
            job = self._jobs.get(circuit_id)
        if job is not None:
            job.thread.join(timeout)
        return self.get(circuit_id)

    def delete(self, circuit_id: str) -> None:
        rec = self.get(circuit_id)
        if rec.status in ("queued", "running"):
            raise Conflict(f"circuit {circuit_id} is being traced; cancel it first")
        with self._lock:
            self._graphs.pop(circuit_id, None)
        self.repo.delete(circuit_id)
        if rec.path:
            shutil.rmtree(rec.path, ignore_errors=True)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for j in jobs:
            j.cancel.set()
        for j in jobs:
            j.thread.join(timeout)

    def _event(self, cid: str, status: str, done: int = 0, total: int = 0, detail: str | None = None) -> None:
        self.publish(JobProgress(job_id=cid, kind=JOB_KIND, status=status, done=done, total=total, detail=detail))

    def _job(self, cid: str, prompt: str, settings: CircuitSettings, cancel: threading.Event) -> None:
        t0 = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if cancel.is_set():
                raise _Cancelled()
            now = time.perf_counter()
            if now - last[0] >= 0.5 or done >= total:
                last[0] = now
                self._event(cid, "running", done, total, "attribution")

        try:
            self.repo.update(cid, status="running")
            self._event(cid, "running", 0, 0, "recording the prompt")
            with self.scope:
                fitted, ids, target = self._prepare(prompt, settings)
                lm = fitted.lm
                graph = attribute(lm.model, fitted.transcoders, ids, options=settings.options(target),
                                  tokenizer=lm.tokenizer, model_id=lm.model_id, model_revision=lm.revision,
                                  scan=fitted.record.scan, progress=progress)
                t_graph = time.perf_counter() - t0
                pruned = prune_graph(graph, settings.node_threshold, settings.edge_threshold)
                scores = graph_scores(graph)
                validation = None
                if settings.validate_edges:
                    if cancel.is_set():
                        raise _Cancelled()
                    self._event(cid, "running", 0, 0, "checking edges by intervention")
                    rep = validate_graph(lm.model, fitted.transcoders, graph, n_edges=settings.validate_edges,
                                         freeze=settings.validate_freeze, prune=pruned)  # type: ignore[arg-type]
                    validation = {"pearson": rep.pearson, "sign_agreement": rep.sign_agreement, "freeze": rep.freeze,
                                  "checks": [c._asdict() for c in rep.checks]}
            graph.extra["prompt"] = prompt
            logits = [{"token": s, "token_id": t, "probability": float(p)} for s, t, p in
                      zip(graph.logit_strings or [str(t) for t in graph.logit_tokens], graph.logit_tokens,
                          graph.logit_probabilities.tolist())]
            folder = graph.save(self.root / cid)
            summary = {
                "n_tokens": graph.n_pos, "n_active_features": graph.extra.get("n_active_features"),
                "n_features": graph.n_features, "n_nodes": graph.n_nodes,
                "n_pruned_nodes": int(pruned.node_mask.sum()), "n_pruned_edges": int(pruned.edge_mask.sum()),
                "replacement_score": scores.replacement, "completeness_score": scores.completeness,
                "graph_seconds": round(t_graph, 3), "total_seconds": round(time.perf_counter() - t0, 3),
                "timings": graph.extra.get("seconds", {}), "validation": validation,
                "logits": logits,
                "target": next((lg for lg in logits if lg["token_id"] == target[0]), None) if target else None,
            }
            self.repo.update(cid, status="done", summary=summary, path=str(folder))
            self._event(cid, "done", graph.n_features + graph.n_logits, graph.n_features + graph.n_logits)
        except _Cancelled:
            self.repo.update(cid, status="cancelled", error="cancelled")
            self._event(cid, "cancelled", detail="cancelled")
        except Exception as e:  # noqa: BLE001 - a failed job is reported, never crashes the server
            msg = f"{type(e).__name__}: {getattr(e, 'detail', e)}"
            log.error("circuit %s failed: %s\n%s", cid, msg, traceback.format_exc())
            self.repo.update(cid, status="failed", error=msg)
            self._event(cid, "failed", detail=msg)

    # on a stored graph ---------------------------------------------------------------------
    def _feature_node(self, graph: AttributionGraph, node: int) -> Any:
        ref = graph.node(node)
        if ref.kind != "feature":
            raise Invalid(f"node {node} is a {ref.kind} node; interventions act on feature nodes")
        return ref

    def intervene(self, circuit_id: str, settings: Sequence[NodeSetting], top_k: int = 10) -> dict[str, Any]:
        """Next-token distributions before and after setting every given feature node at once (the real
        model; each transcoder spliced in with its error kept), with the graph's direct-effect prediction for
        the logit nodes."""
        if not settings:
            raise Invalid("give at least one node to intervene on")
        rec = self.get(circuit_id)
        graph = self.graph(circuit_id)
        acts = graph.feature_activations()
        ivs, changes = [], {}
        for s in settings:
            ref = self._feature_node(graph, s.node)
            ivs.append(Intervention(ref.layer, ref.pos, ref.index, float(s.value)))
            changes[s.node] = changes.get(s.node, 0.0) + float(s.value) - float(acts[s.node])
        with self.scope:
            fitted = self.transcoders.fitted(rec.set_id)
            if fitted.lm.model_id != graph.model_id:
                raise Conflict(f"circuit {circuit_id} was traced on {graph.model_id!r}; load that model first")
            d = intervene_logits(fitted.lm.model, fitted.transcoders, torch.tensor(graph.input_ids), ivs)
        decode = lambda t: fitted.lm.tokenizer.decode([int(t)])  # noqa: E731
        p0, p1 = torch.softmax(d.clean, -1), torch.softmax(d.intervened, -1)

        def top(p: torch.Tensor, logits: torch.Tensor) -> list[dict[str, Any]]:
            v, i = p.topk(top_k)
            return [{"token": decode(t), "token_id": int(t), "probability": float(x), "logit": float(logits[t])}
                    for x, t in zip(v, i)]

        moved = (p1 - p0).abs().topk(top_k).indices
        pred = predicted_logit_changes(graph, changes)
        c0 = d.clean - d.clean.mean()
        c1 = d.intervened - d.intervened.mean()
        logit_nodes = [{"node": graph.logit_start + k, "token": (graph.logit_strings or [None] * graph.n_logits)[k],
                        "token_id": t, "predicted": float(pred[k]), "measured": float(c1[t] - c0[t]),
                        "before": float(p0[t]), "after": float(p1[t])}
                       for k, t in enumerate(graph.logit_tokens)]
        kl = float((p0 * (torch.log_softmax(d.clean, -1) - torch.log_softmax(d.intervened, -1))).sum())
        return {"before": top(p0, d.clean), "after": top(p1, d.intervened), "kl": kl, "logit_nodes": logit_nodes,
                "moved": [{"token": decode(t), "token_id": int(t), "before": float(p0[t]), "after": float(p1[t])}
                          for t in moved],
                "interventions": [{"node": s.node, "layer": iv.layer, "pos": iv.pos, "feature": iv.feature,
                                   "activation": float(acts[s.node]), "value": iv.value} for s, iv in zip(settings, ivs)]}

    def send_to_patch(self, circuit_id: str, node: int, *, mode: str = "clamp", value: float = 0.0,
                      name: str | None = None) -> tuple[PatchConfig, bool, str]:
        """A Patch-console patch on the node's transcoder feature: ``clamp`` holds it at ``value`` (0 ablates),
        ``steer`` adds ``value`` times its decoder row. Returns (patch, exact, note)."""
        rec = self.get(circuit_id)
        graph = self.graph(circuit_id)
        ref = self._feature_node(graph, node)
        if mode not in ("clamp", "steer"):
            raise Invalid("mode must be clamp (hold the feature at a value; 0 ablates) or steer (add its direction)")
        sae_id = self.transcoders.sae_id_for(rec.set_id, ref.layer)
        af = graph.active_features
        elsewhere = int(((af[:, 0] == ref.layer) & (af[:, 2] == ref.index) & (af[:, 1] != ref.pos)).sum())
        cfg = self.create_patch(sae_id=sae_id, features=[ref.index], mode=mode, strength=value,
                                name=name or f"circuit {circuit_id} node {node}: L{ref.layer} #{ref.index} {mode} {value:g}")
        if mode == "clamp":
            exact = elsewhere == 0
            note = (f"clamp on the layer-{ref.layer} MLP: the transcoder's feature {ref.index} is read from the MLP input "
                    f"and held at {value:g} with the transcoder's error kept, at every position. At position {ref.pos} "
                    "this is exactly the circuit intervention on this node"
                    + ("." if exact else f"; on this prompt the feature also fires at {elsewhere} other position(s), "
                                         "which the patch sets too (the circuit intervention changes one position)."))
        else:
            exact = False
            note = (f"steer adds {value:g} x the feature's decoder row to the layer-{ref.layer} MLP output at every "
                    "position; a circuit intervention sets the activation at one position instead (use clamp for that)")
        return cfg, exact, note

    def export(self, circuit_id: str, fmt: str = "circuit-tracer", node_threshold: float | None = None,
               edge_threshold: float | None = None) -> dict[str, Any]:
        rec = self.get(circuit_id)
        g = self.graph(circuit_id)
        nt = rec.settings.get("node_threshold", 0.8) if node_threshold is None else node_threshold
        et = rec.settings.get("edge_threshold", 0.98) if edge_threshold is None else edge_threshold
        pruned = prune_graph(g, nt, et)
        if fmt == "circuit-tracer":
            return to_circuit_tracer_json(g, slug=circuit_id, prune=pruned, node_threshold=nt, edge_threshold=et,
                                          prompt=rec.prompt)
        if fmt == "workbench":
            return {**to_workbench_json(g, pruned), "prompt": rec.prompt, "settings": rec.settings}
        raise Invalid("format must be circuit-tracer or workbench")
