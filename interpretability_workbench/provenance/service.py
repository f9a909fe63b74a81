"""ProvenanceService (``state.provenance``): picks the SAEs, checks the request, builds the graph."""
from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING

import torch

from ..errors import BadRequest, Conflict, Invalid
from ..inference.engine import encode_prompt
from ..sae.model import SparseAutoencoder
from .graph import build_graph
from .types import GraphOptions, ProvenanceGraph, SAERef, hook_order

if TYPE_CHECKING:
    from ..state import WorkbenchState


class ProvenanceService:
    def __init__(self, state: "WorkbenchState") -> None:
        self.state = state
        # registry SAEs live on the registry's device; copies on the model's device, keyed by sae id
        self._moved: dict[tuple[str, str], tuple[SparseAutoencoder, SparseAutoencoder]] = {}
        self._lock = threading.Lock()

    def _on_model_device(self, sae_id: str, sae: SparseAutoencoder) -> SparseAutoencoder:
        lm = self.state.lm
        device = lm.device if lm is not None else torch.device("cpu")
        if sae.W_enc.device == torch.device(device):
            return sae
        key = (sae_id, str(device))
        with self._lock:
            hit = self._moved.get(key)
            if hit is None or hit[0] is not sae:
                hit = (sae, copy.deepcopy(sae).to(device))
                self._moved[key] = hit
        return hit[1]

    def _ref(self, sae_id: str) -> SAERef:
        entry = self.state.saes.get(sae_id)  # NotFound -> 404
        return SAERef(sae_id, self._on_model_device(sae_id, entry.sae), entry.row["hook_name"])

    def pick_upstream(self, target_id: str, depth: int, explicit: list[str] | None = None) -> list[SAERef]:
        """The ``depth`` nearest SAEs below the target (one per layer, same model; same hook kind preferred,
        then the newest), or the explicitly named ones (which must all sit below the target)."""
        target_row = self.state.saes.get(target_id).row
        t_order = hook_order(target_row["hook_name"])
        t_kind = target_row["hook_name"].rsplit("hook_", 1)[-1]
        if explicit:
            refs = []
            for sid in dict.fromkeys(explicit):
                row = self.state.saes.get(sid).row
                if row["model_id"] != target_row["model_id"]:
                    raise BadRequest(f"upstream SAE {sid!r} was trained on {row['model_id']!r}, the target on "
                                     f"{target_row['model_id']!r}; pick SAEs of one model")
                if hook_order(row["hook_name"]) >= t_order:
                    raise BadRequest(f"upstream SAE {sid!r} reads {row['hook_name']}, which is not before the "
                                     f"target's {target_row['hook_name']}; name SAEs of earlier hook points")
                refs.append(self._ref(sid))
            return sorted(refs, key=lambda r: r.order, reverse=True)[:depth]
        rows = self.state.db.query(
            "SELECT id, hook_name, layer, created_at FROM saes WHERE model_id = ? AND layer < ? AND id != ?",
            (target_row["model_id"], target_row["layer"], target_id))
        best: dict[int, dict] = {}
        for r in rows:
            key = (r["hook_name"].endswith("hook_" + t_kind), r["created_at"])
            cur = best.get(r["layer"])
            if cur is None or key > (cur["hook_name"].endswith("hook_" + t_kind), cur["created_at"]):
                best[r["layer"]] = r
        layers = sorted(best, reverse=True)[:depth]
        if not layers:
            raise BadRequest(f"no SAEs of {target_row['model_id']!r} are registered below layer "
                             f"{target_row['layer']}; train or import SAEs at earlier layers to trace provenance")
        return [self._ref(best[layer]["id"]) for layer in layers]

    def labels(self, sae_id: str, indices: list[int]) -> dict[int, str | None]:
        if not indices:
            return {}
        marks = ",".join("?" for _ in indices)
        rows = self.state.db.query(
            f"SELECT idx, label, auto_label FROM features WHERE sae_id = ? AND idx IN ({marks})",
            (sae_id, *indices))
        return {int(r["idx"]): (r["label"] or r["auto_label"] or None) for r in rows}

    def build(self, sae_id: str, feature: int, *, depth: int = 2, prompt: str | None = None,
              upstream: list[str] | None = None, options: GraphOptions | None = None) -> ProvenanceGraph:
        lm = self.state.require_model()
        target = self._ref(sae_id)
        row = self.state.saes.get(sae_id).row
        if row["model_id"] != lm.model_id:
            raise BadRequest(f"SAE {sae_id!r} was trained on {row['model_id']!r} but the loaded model is "
                             f"{lm.model_id!r}; load that model or pick another SAE")
        if target.sae.cfg.d_in != lm.d_model:
            raise BadRequest(f"SAE {sae_id!r} reads d_in={target.sae.cfg.d_in}, the model has d_model={lm.d_model}")
        if not 0 <= feature < target.sae.cfg.d_sae:
            raise Invalid(f"feature {feature} is out of range: SAE {sae_id!r} has features 0..{target.sae.cfg.d_sae - 1}")
        if depth < 1:
            raise Invalid(f"depth must be >= 1, got {depth}")
        if target.layer >= lm.n_layers:
            raise BadRequest(f"SAE {sae_id!r} reads layer {target.layer}; the model has layers 0..{lm.n_layers - 1}")
        ups = self.pick_upstream(sae_id, depth, upstream)
        input_ids = None
        if prompt is not None and prompt.strip():
            input_ids = encode_prompt(lm, prompt, self.state.settings.max_prompt_tokens)
        elif prompt:
            raise Invalid("prompt is blank; give some text or leave it out")
        with self.state.model_lock:
            if self.state.lm is not lm:
                raise Conflict("the model changed while the request was waiting; retry")
            return build_graph(lm.model, lm.tokenizer, target, feature, ups, input_ids=input_ids,
                               prompt=prompt, options=options, labels=self.labels, n_layers=lm.n_layers)
