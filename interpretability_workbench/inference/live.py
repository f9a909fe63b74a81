"""LiveSession: the live path (a WebSocket's slider, ``evaluate``) — one prompt, many patched results.

The original run (every patch off) is computed once per prompt and kept: its last-position logits, its keys
and values at every position (a transformers ``DynamicCache``), the prompt's ``resid_pre`` at each block a
patched forward started from, and where each patch entry first writes (``inference/prefix.py``). A patched
result then runs only the blocks at and above the lowest patched one, only the positions from the first one
the patches change (on the cached prefix), and projects only the last position to logits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from ..model.hook_names import hook_name
from ..model.hooks import forward_last_logits
from ..model.loader import LoadedModel
from ..model.tokenize import encode_prompt
from . import prefix
from .results import Comparison, comparison

if TYPE_CHECKING:
    from ..model.handle import ModelHandle
    from ..patches.manager import PatchManager


class LiveLogits(NamedTuple):
    original: Tensor
    """``[d_vocab]`` float32, every patch off."""
    patched: Tensor
    """``[d_vocab]`` float32, the patches on."""
    patch_ids: list[str]
    from_layer: int | None
    """Lowest block rerun (None: no patches)."""
    from_position: int | None
    """First position rerun (None: no patches; the prompt length: the patches change nothing here)."""


@dataclass
class OriginalRun:
    logits: Tensor
    """``[d_vocab]`` float32."""
    cache: Any
    """``DynamicCache`` of the whole prompt (keys and values of every position at every layer)."""
    resid: dict[int, Tensor] = field(default_factory=dict)
    """block -> ``resid_pre [1 pos d_model]``."""
    scan: prefix.Scan = field(default_factory=dict)
    """Where each patch entry on the model writes (``prefix.scanning``)."""


@dataclass
class LiveSession:
    """Caches for one client (a socket or one request): the prompt's ids and its original run. Valid for one
    model and prompt; a new prompt or model starts over."""

    model: ModelHandle
    patches: PatchManager
    max_prompt_tokens: int
    reuse_prefix: bool = True
    """Run only the positions from the first one the patches change (False: every position)."""
    _key: tuple[int, str] | None = None
    _ids: Tensor | None = None
    _run: OriginalRun | None = None

    def _prepare(self, lm: LoadedModel, text: str) -> Tensor:
        key = (id(lm.model), text)
        if key != self._key:
            self._ids = encode_prompt(lm, text, self.max_prompt_tokens)
            self._key, self._run = key, None
        assert self._ids is not None
        return self._ids

    def _targets(self, pids: list[str]) -> dict[str, list[str]]:
        return {pid: list(self.patches.get(pid).target_modules) for pid in pids}

    def _original(self, lm: LoadedModel, ids: Tensor, layer: int | None, pids: list[str]) -> OriginalRun:
        run = self._run
        n = int(ids.shape[1])
        need_resid = layer is not None and layer > 0 and (run is None or layer not in run.resid)
        need_scan = bool(pids) and (run is None or prefix.first_change(lm.model, self._targets(pids), run.scan, n) is None)
        if run is not None and not need_resid and not need_scan:
            return run
        from transformers import DynamicCache

        layers = set(run.resid) if run is not None else set()
        if layer is not None and layer > 0:
            layers.add(layer)
        grabbed: dict[int, Tensor] = {}

        def grab(i: int):
            def fn(act: Tensor) -> None:
                grabbed[i] = act.detach().clone()
            return fn

        cache, scan = DynamicCache(config=lm.model.config), {}
        with self.patches.original, prefix.scanning(lm.model, scan):
            logits = forward_last_logits(lm.model, ids, fwd_hooks={hook_name(i, "resid_pre"): grab(i) for i in layers},
                                         cache=cache)[0].float()  # [d_vocab]
        self._run = OriginalRun(logits, cache, grabbed, scan)
        return self._run

    def logits_detail(self, text: str, patch_ids: list[str] | None) -> LiveLogits:
        """Original and patched last-position logits, under the model lock."""
        with self.model.lock:
            lm = self.model.require()
            ids = self._prepare(lm, text)
            n = int(ids.shape[1])
            pids = self.patches.resolve_ids(patch_ids)
            layer = self.patches.lowest_layer(pids)
            run = self._original(lm, ids, layer, pids)
            if layer is None:
                return LiveLogits(run.logits, run.logits, pids, None, None)
            start = 0
            if self.reuse_prefix and prefix.prefix_reusable(run.cache):
                start = prefix.first_change(lm.model, self._targets(pids), run.scan, n) or 0
            if start >= n:  # no patch writes anything on this prompt: the patched run is the original run
                return LiveLogits(run.logits, run.logits, pids, layer, n)
            kw: dict[str, Any] = {}
            if layer > 0:
                kw.update(from_layer=layer, resid_pre=run.resid[layer][:, start:])
            if start > 0:
                kw["cache"] = prefix.cropped(run.cache, start)
            with self.patches.using(pids), torch.no_grad():
                patched = forward_last_logits(lm.model, ids[:, start:], **kw)[0].float()
            return LiveLogits(run.logits, patched, pids, layer, start)

    def logits(self, text: str, patch_ids: list[str] | None) -> tuple[Tensor, Tensor, list[str], int | None]:
        """(original [d_vocab], patched [d_vocab], patch ids used, from_layer) under the model lock."""
        r = self.logits_detail(text, patch_ids)
        return r.original, r.patched, r.patch_ids, r.from_layer

    def compare(self, text: str, top_k: int = 10, patch_ids: list[str] | None = None) -> Comparison:
        t0 = time.perf_counter()
        r = self.logits_detail(text, patch_ids)
        lm = self.model.require()
        assert self._ids is not None
        return comparison(lm, r.original, r.patched, top_k, r.patch_ids, int(self._ids.shape[1]), r.from_layer,
                          (time.perf_counter() - t0) * 1000)
