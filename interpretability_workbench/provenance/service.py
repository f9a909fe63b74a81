"""ProvenanceService: picks the SAEs, checks the request, builds the graph."""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, NamedTuple

from ..errors import BadRequest, Conflict, Invalid
from ..model.handle import ModelHandle
from ..model.tokenize import encode_prompt
from ..sae.registry import SAERegistry
from .graph import build_graph
from .types import GraphOptions, ProvenanceGraph, SAERef, hook_order

LabelTexts = Callable[[str, list[int]], dict[int, str | None]]
"""(sae_id, feature indices) -> display label of each (missing when the feature has no analysis)."""


class UpstreamSAE(NamedTuple):
    sae_id: str
    name: str
    layer: int
    hook_name: str


class UpstreamStatus(NamedTuple):
    """Which SAEs a provenance graph of an SAE's features would trace through, and which layers lack one."""

    sae_id: str
    layer: int
    hook: str
    """Hook kind of the target (resid_post, ...)."""
    available: list[UpstreamSAE]
    """The SAE per lower layer a graph would use (nearest first)."""
    missing_layers: list[int]
    """Layers below the target without an SAE, nearest first."""
    suggested_layers: list[int]
    """The nearest missing layers a graph of ``depth`` would want (train these)."""
    train: dict[str, Any]
    """A training request for ``suggested_layers`` matching the target SAE (POST /api/training)."""


class ProvenanceService:
    def __init__(self, model: ModelHandle, saes: SAERegistry, labels: LabelTexts,
                 scope: AbstractContextManager[Any], max_prompt_tokens: int) -> None:
        """``scope``: held while the graph is built (the model lock, with every patch switched off)."""
        self.model, self.saes, self.labels, self.scope = model, saes, labels, scope
        self.max_prompt_tokens = max_prompt_tokens

    def _ref(self, sae_id: str) -> SAERef:
        entry = self.saes.get(sae_id)  # NotFound -> 404; on the loaded model's device
        return SAERef(sae_id, entry.sae, entry.row.hook_name)

    def pick_upstream(self, target_id: str, depth: int, explicit: list[str] | None = None) -> list[SAERef]:
        """The ``depth`` nearest SAEs below the target (one per layer, same model; same hook kind preferred,
        then the newest), or the explicitly named ones (which must all sit below the target)."""
        target = self.saes.row(target_id)
        t_order = hook_order(target.hook_name)
        if explicit:
            refs = []
            for sid in dict.fromkeys(explicit):
                row = self.saes.row(sid)
                if row.model_id != target.model_id:
                    raise BadRequest(f"upstream SAE {sid!r} was trained on {row.model_id!r}, the target on "
                                     f"{target.model_id!r}; pick SAEs of one model")
                if hook_order(row.hook_name) >= t_order:
                    raise BadRequest(f"upstream SAE {sid!r} reads {row.hook_name}, which is not before the "
                                     f"target's {target.hook_name}; name SAEs of earlier hook points")
                refs.append(self._ref(sid))
            return sorted(refs, key=lambda r: r.order, reverse=True)[:depth]
        best = self._best_below(target_id)
        layers = sorted(best, reverse=True)[:depth]
        if not layers:
            raise BadRequest(f"no SAEs of {target.model_id!r} are registered below layer "
                             f"{target.layer}; train SAEs at earlier layers (e.g. layers "
                             f"{', '.join(map(str, range(target.layer - 1, max(target.layer - 1 - depth, -1), -1)))}) "
                             f"or import some to trace provenance")
        return [self._ref(best[layer].id) for layer in layers]

    def _best_below(self, target_id: str) -> dict[int, Any]:
        """Per lower layer, the SAE a graph uses: same hook kind as the target preferred, then the newest."""
        target = self.saes.row(target_id)
        t_kind = target.hook_name.rsplit("hook_", 1)[-1]
        best: dict[int, Any] = {}
        for r in self.saes.of_model_below(target.model_id, target.layer, exclude=target_id):
            key = (r.hook_name.endswith("hook_" + t_kind), r.created_at)
            cur = best.get(r.layer)
            if cur is None or key > (cur.hook_name.endswith("hook_" + t_kind), cur.created_at):
                best[r.layer] = r
        return best

    def upstream(self, sae_id: str, depth: int = 2) -> UpstreamStatus:
        """What a graph of ``depth`` would trace through (no model needed), and what to train for it."""
        if depth < 1:
            raise Invalid(f"depth must be >= 1, got {depth}")
        target = self.saes.row(sae_id)  # 404 for unknown ids
        kind = target.hook_name.rsplit("hook_", 1)[-1]
        best = self._best_below(sae_id)
        avail = [UpstreamSAE(best[layer].id, best[layer].name, layer, best[layer].hook_name)
                 for layer in sorted(best, reverse=True)]
        missing = [layer for layer in range(target.layer - 1, -1, -1) if layer not in best]
        wanted = list(range(target.layer - 1, max(target.layer - 1 - depth, -1), -1))
        suggested = [layer for layer in wanted if layer not in best]
        train: dict[str, Any] = {"layers": suggested, "hook": kind, "d_sae": target.d_sae,
                                 "architecture": target.architecture}
        k = self.saes.get(sae_id).sae.cfg.k
        if k:
            train["k"] = int(k)
        return UpstreamStatus(sae_id, target.layer, kind, avail, missing, suggested, train)

    def build(self, sae_id: str, feature: int, *, depth: int = 2, prompt: str | None = None,
              upstream: list[str] | None = None, options: GraphOptions | None = None) -> ProvenanceGraph:
        fit = self.saes.fitted(sae_id)  # 404 unknown, 400 without a model or when it does not fit
        lm = fit.lm
        target = self._ref(sae_id)
        if not 0 <= feature < target.sae.cfg.d_sae:
            raise Invalid(f"feature {feature} is out of range: SAE {sae_id!r} has features 0..{target.sae.cfg.d_sae - 1}")
        if depth < 1:
            raise Invalid(f"depth must be >= 1, got {depth}")
        ups = self.pick_upstream(sae_id, depth, upstream)
        input_ids = None
        if prompt is not None and prompt.strip():
            input_ids = encode_prompt(lm, prompt, self.max_prompt_tokens)
        elif prompt:
            raise Invalid("prompt is blank; give some text or leave it out")
        with self.scope:
            if self.model.lm is not lm:
                raise Conflict("the model changed while the request was waiting; retry")
            return build_graph(lm.model, lm.tokenizer, target, feature, ups, input_ids=input_ids,
                               prompt=prompt, options=options, labels=self.labels, n_layers=lm.n_layers)
