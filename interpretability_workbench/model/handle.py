"""ModelHandle: the one loaded model every service reads, its lock, its loading state and its listeners.

Services get the handle, never the workbench state: ``require()`` gives the loaded model (or a 400 that
says how to load one), ``lock`` is held for model swaps and for every forward that must see a consistent
set of patches, and ``on_change(fn)`` lets a service react when another model is loaded (patches are
re-applied, SAEs move to the new device).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import BadRequest, NoModelError
from ..events import ModelLoaded, Publish
from .hook_map import arch_for
from .loader import LoadedModel, ModelLoadError, load_model
from .placement import memory_report

log = logging.getLogger(__name__)

ChangeListener = Callable[[LoadedModel | None, LoadedModel], None]
"""``fn(old, new)``, called under the model lock when another model is loaded."""


@dataclass(frozen=True)
class LoadDefaults:
    """How models are loaded when a request does not say (from the settings)."""

    device: str = "auto"
    dtype: str = "auto"
    quantization: str = "none"
    cache_dir: Path | None = None
    """Where GGUF weights are dequantized once (the workspace's model cache)."""
    allow_downloads: bool = False
    """Hub ids may be downloaded (else they load from the local Hugging Face cache only)."""
    device_map: str = "none"
    """'none' (the whole model on ``device``) or an accelerate placement ('auto', 'balanced', 'sequential')."""
    max_memory: dict[str, str] | None = None
    """Per-device budget for a device map (``{"0": "20GiB", "cpu": "64GiB"}``)."""


class ModelHandle:
    def __init__(self, defaults: LoadDefaults, publish: Publish | None = None,
                 loader: Callable[..., LoadedModel] = load_model) -> None:
        self.defaults = defaults
        self._publish = publish
        self._loader = loader
        self.lm: LoadedModel | None = None
        self.status = "none"
        """none | loading | ready | error."""
        self.error: str | None = None
        self.requested: str | None = None
        self.lock = threading.RLock()
        self._listeners: list[ChangeListener] = []
        self.started_at = time.time()

    def on_change(self, fn: ChangeListener) -> None:
        """Call ``fn(old, new)`` (under the model lock) whenever another model is loaded."""
        self._listeners.append(fn)

    def require(self) -> LoadedModel:
        """The loaded model; 400 (with what to do) when there is none yet."""
        lm = self.lm
        if lm is None:
            if self.status == "loading":
                raise NoModelError(f"model {self.requested!r} is still loading; retry in a few seconds")
            raise NoModelError()
        return lm

    def load(self, name: str, *, device: str | None = None, dtype: str | None = None,
             quantization: str | None = None, device_map: str | None = None) -> LoadedModel:
        d = self.defaults
        self.status, self.requested, self.error = "loading", name, None
        dmap = device_map or d.device_map
        extra: dict[str, Any] = {}
        if dmap not in ("", "none"):  # only dispatched loads take these (test loaders need not know them)
            extra = {"device_map": dmap, "max_memory": d.max_memory}
        try:
            lm = self._loader(name, device=device or d.device, dtype=dtype or d.dtype, cache_dir=d.cache_dir,
                              quantization=quantization or d.quantization, allow_downloads=d.allow_downloads,
                              **extra)
        except ModelLoadError as e:
            self._failed(str(e))
            raise BadRequest(str(e)) from None
        except Exception as e:  # noqa: BLE001 - keep the server alive, report the cause
            self._failed(f"{type(e).__name__}: {e}")
            raise BadRequest(f"could not load model {name!r}: {self.error}") from None
        return self.adopt(lm)

    def adopt(self, lm: LoadedModel) -> LoadedModel:
        """Make an already loaded model the live one: listeners run under the lock, then ``model_loaded``."""
        with self.lock:
            old, self.lm = self.lm, lm
            for fn in self._listeners:
                fn(old, lm)
            self.status, self.requested, self.error = "ready", self.requested or lm.name, None
        if self._publish is not None:
            self._publish(ModelLoaded(model=lm.describe()))
        log.info("model loaded", extra={"model": lm.model_id, "seconds": round(lm.load_seconds, 2)})
        return lm

    def _failed(self, error: str) -> None:
        self.status = "ready" if self.lm is not None else "error"
        self.error = error

    def load_in_background(self, name: str) -> threading.Thread:
        def run() -> None:
            try:
                self.load(name)
            except Exception as e:  # noqa: BLE001
                log.error("model load failed: %s", e)
        self.status, self.requested = "loading", name
        t = threading.Thread(target=run, name="model-loader", daemon=True)
        t.start()
        return t

    def info(self) -> dict[str, Any]:
        """Status plus the loaded model's description, hook points, weight bytes and per-device memory
        (used / free, and which blocks sit where)."""
        out: dict[str, Any] = {"status": self.status, "requested": self.requested, "error": self.error}
        lm = self.lm
        if lm is not None:
            out.update(lm.describe())
            out["hook_points"] = lm.hook_points
            out["memory_bytes"] = sum(p.numel() * p.element_size() for p in lm.model.parameters())
            out["devices"] = [asdict(m) for m in memory_report(lm.model, arch_for(lm.model).layers, lm.device)]
        return out
