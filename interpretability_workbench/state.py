"""WorkbenchState: everything one running workbench holds — settings, store, event bus, the loaded
model, and the services built on it (training, features, patches, inference, provenance).

The server and the CLI both drive the workbench through this object; nothing here imports FastAPI.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .activations.corpus import SUPPORTED_SUFFIXES, CorpusError, count_tokens, default_corpus_path, load_texts
from .errors import BadRequest, Invalid, NoModelError, NotFound
from .events import MODEL_LOADED, EventBus
from .model.loader import LoadedModel, ModelLoadError, load_model
from .settings import Settings
from .store.artifacts import atomic_write_bytes, safe_join
from .store.db import Database, new_id, now

log = logging.getLogger(__name__)


class WorkbenchState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.db = Database(settings.db_path)
        self.bus = EventBus()
        self.lm: LoadedModel | None = None
        self.model_status = "none"  # none | loading | ready | error
        self.model_error: str | None = None
        self.model_requested: str | None = None
        # held for model swaps and for any forward pass that must see a consistent set of patches
        self.model_lock = threading.RLock()
        self._model_listeners: list[Callable[[LoadedModel | None, LoadedModel], None]] = []
        self.started_at = time.time()
        self._init_services()

    def _init_services(self) -> None:
        """Build the services that sit on top of the model, in data-flow order."""
        from .features.service import FeatureService
        from .patches.manager import PatchManager
        from .provenance.service import ProvenanceService
        from .sae.registry import SAERegistry
        from .training.service import TrainingService

        self.saes = SAERegistry(self.db, self.settings.artifacts_dir / "saes")
        self.training = TrainingService(self)
        self.patches = PatchManager(self)
        self.provenance = ProvenanceService(self)
        self.features = FeatureService(self)

    def shutdown(self) -> None:
        """Stop background work: calls ``shutdown()`` on every service that has one (server exit)."""
        for svc in list(vars(self).values()):
            fn = getattr(svc, "shutdown", None)
            if callable(fn) and svc is not self:
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - one failing service must not block the others
                    log.warning("shutdown of %s failed: %s", type(svc).__name__, e)

    # model ---------------------------------------------------------------------------
    def on_model_change(self, fn: Callable[[LoadedModel | None, LoadedModel], None]) -> None:
        """Call ``fn(old, new)`` (under the model lock) whenever another model is loaded."""
        self._model_listeners.append(fn)

    def require_model(self) -> LoadedModel:
        if self.lm is None:
            if self.model_status == "loading":
                raise NoModelError(f"model {self.model_requested!r} is still loading; retry in a few seconds")
            raise NoModelError()
        return self.lm

    def load_model(self, name: str, *, device: str | None = None, dtype: str | None = None,
                   quantization: str | None = None) -> LoadedModel:
        s = self.settings
        self.model_status, self.model_requested, self.model_error = "loading", name, None
        try:
            lm = load_model(name, device=device or s.device, dtype=dtype or s.dtype,
                            cache_dir=s.model_cache_dir, quantization=quantization or s.quantization)
        except ModelLoadError as e:
            self.model_status = "ready" if self.lm is not None else "error"
            self.model_error = str(e)
            raise BadRequest(str(e)) from None
        except Exception as e:  # noqa: BLE001 - keep the server alive, report the cause
            self.model_status = "ready" if self.lm is not None else "error"
            self.model_error = f"{type(e).__name__}: {e}"
            raise BadRequest(f"could not load model {name!r}: {self.model_error}") from None
        with self.model_lock:
            old, self.lm = self.lm, lm
            for fn in self._model_listeners:
                fn(old, lm)
            self.model_status = "ready"
        self.bus.publish(MODEL_LOADED, model=lm.describe())
        log.info("model loaded", extra={"model": lm.model_id, "seconds": round(lm.load_seconds, 2)})
        return lm

    def load_model_in_background(self, name: str) -> threading.Thread:
        def run() -> None:
            try:
                self.load_model(name)
            except Exception as e:  # noqa: BLE001
                log.error("model load failed: %s", e)
        self.model_status, self.model_requested = "loading", name
        t = threading.Thread(target=run, name="model-loader", daemon=True)
        t.start()
        return t

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"status": self.model_status, "requested": self.model_requested,
                                "error": self.model_error}
        if self.lm is not None:
            info.update(self.lm.describe())
            info["hook_points"] = self.lm.hook_points
        return info

    # corpora -------------------------------------------------------------------------
    def add_corpus(self, filename: str, data: bytes) -> dict[str, Any]:
        name = Path(filename or "").name
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise Invalid(f"unsupported corpus file {name!r}; upload {', '.join(SUPPORTED_SUFFIXES)}")
        if not data:
            raise Invalid("the uploaded corpus is empty")
        cid = new_id("corpus")
        path = safe_join(self.settings.corpora_dir, f"{cid}{suffix}")
        atomic_write_bytes(path, data)
        try:
            texts = load_texts(path)
        except CorpusError as e:
            path.unlink(missing_ok=True)
            raise Invalid(str(e)) from None
        n_tokens = count_tokens(self.lm.tokenizer, texts) if self.lm is not None else None
        row = {"id": cid, "name": name, "path": str(path), "n_docs": len(texts), "n_tokens": n_tokens,
               "size_bytes": len(data), "created_at": now()}
        self.db.insert("corpora", row)
        return row

    def list_corpora(self) -> list[dict[str, Any]]:
        p = default_corpus_path()
        default = {"id": "default", "name": "default (Python standard library docstrings)", "path": str(p),
                   "size_bytes": p.stat().st_size, "created_at": None, **self._default_corpus_counts()}
        return [default, *self.db.query("SELECT * FROM corpora ORDER BY created_at")]

    def _default_corpus_counts(self) -> dict[str, Any]:
        """Documents and tokens of the built-in corpus under the loaded tokenizer (computed once per model)."""
        key = self.lm.model_id if self.lm is not None else None
        cached = getattr(self, "_default_counts", None)
        if cached is None or cached[0] != key:
            texts = load_texts(None)
            n_tokens = count_tokens(self.lm.tokenizer, texts) if self.lm is not None else None
            cached = self._default_counts = (key, {"n_docs": len(texts), "n_tokens": n_tokens})
        return cached[1]

    def corpus_path(self, corpus: str | None) -> Path | None:
        """'default'/None -> None (built-in corpus); a corpus id -> its stored file."""
        if corpus in (None, "", "default"):
            return None
        row = self.db.get("corpora", id=corpus)
        if row is None:
            raise NotFound(f"corpus {corpus!r} not found; GET /api/corpora lists them")
        return Path(row["path"])

    def close(self) -> None:
        self.db.close()
