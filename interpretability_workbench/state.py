"""WorkbenchState: the composition root. It builds the store, the event bus, the model handle and every
service, hands each service exactly the collaborators it uses, and wires the cross-service reactions as
event-bus subscriptions ("analyse the new SAEs after training").

Only ``server/`` and ``cli/`` import this module; nothing below them does.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from .activations.corpora import CorpusService
from .circuits.registry import TranscoderRegistry
from .circuits.service import CircuitService
from .contrast.contrast import ContrastService
from .events import EventBus, TrainingDone
from .features.service import FeatureService
from .inference.engine import InferenceEngine
from .model.handle import LoadDefaults, ModelHandle
from .model.loader import LoadedModel
from .patches.manager import PatchManager
from .patches.peft_io import PatchTransfer
from .provenance.service import ProvenanceService
from .sae.registry import SAERegistry
from .settings import Settings
from .store.circuits import CircuitRepo
from .store.corpora import CorpusRepo
from .store.db import Database
from .store.features import FeatureRepo
from .store.patches import PatchRepo
from .store.runs import RunRepo
from .store.saes import SAERepo
from .store.transcoders import TranscoderSetRepo
from .training.service import TrainingService
from .training.transcoder_service import TranscoderTrainingService

log = logging.getLogger(__name__)


class WorkbenchState:
    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        settings.ensure_dirs()
        self.db = Database(s.db_path)
        self.bus = EventBus()
        publish = self.bus.publish
        self.model = ModelHandle(LoadDefaults(s.device, s.dtype, s.quantization, s.model_cache_dir,
                                                s.allow_downloads), publish)
        # services, in data-flow order: each gets exactly what it uses
        self.corpora = CorpusService(CorpusRepo(self.db), s.corpora_dir, self.model)
        self.saes = SAERegistry(SAERepo(self.db), s.artifacts_dir / "saes", self.model)
        self.patches = PatchManager(PatchRepo(self.db), self.saes, self.model, s.artifacts_dir / "patches")
        original = self.patches.original  # the model lock with every patch off: recording never sees patches
        self.training = TrainingService(RunRepo(self.db), self.model, self.saes, self.corpora, publish, original,
                                        s.runs_dir)
        self.transcoders = TranscoderRegistry(TranscoderSetRepo(self.db), self.saes, self.model)
        self.transcoder_training = TranscoderTrainingService(RunRepo(self.db), self.model, self.transcoders,
                                                             self.corpora, publish, original,
                                                             busy=self.training.active_run)
        self.features = FeatureService(FeatureRepo(self.db), self.saes, self.model, self.corpora, publish, original,
                                       context_size=s.context_size, max_prompt_tokens=s.max_prompt_tokens)
        labels = self.features.queries
        self.inference = InferenceEngine(self.model, self.patches, s.max_prompt_tokens)
        self.patch_transfer = PatchTransfer(self.patches, self.saes, self.model, max_zip_bytes=s.max_body_bytes * 4)
        self.contrast = ContrastService(self.model, self.saes, labels.labels, original, s.max_prompt_tokens)
        self.provenance = ProvenanceService(self.model, self.saes, labels.label_texts, original, s.max_prompt_tokens)
        self.circuits = CircuitService(CircuitRepo(self.db), self.transcoders, self.model, publish, original,
                                       s.artifacts_dir / "circuits", labels=labels.label_texts,
                                       create_patch=self.patches.create)
        # cross-service reactions
        self.bus.on(TrainingDone, self._analyse_after_training)

    def _analyse_after_training(self, ev: TrainingDone) -> None:
        if not self.training.get(ev.run_id).config.get("analyze", True):
            return
        for sid in ev.sae_ids:
            try:
                self.features.start_analysis(sid)
            except Exception as e:  # noqa: BLE001 - analysis is best effort after training
                log.warning("could not start analysis of %s: %s", sid, e)

    # conveniences for the server and CLI skins -----------------------------------------
    @property
    def lm(self) -> LoadedModel | None:
        return self.model.lm

    @property
    def model_lock(self) -> Any:
        return self.model.lock

    @property
    def model_status(self) -> str:
        return self.model.status

    @property
    def started_at(self) -> float:
        return self.model.started_at

    def require_model(self) -> LoadedModel:
        return self.model.require()

    def load_model(self, name: str, **kw: Any) -> LoadedModel:
        return self.model.load(name, **kw)

    def on_model_change(self, fn: Callable[[LoadedModel | None, LoadedModel], None]) -> None:
        self.model.on_change(fn)

    # lifecycle -------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop background work (server exit): runs checkpoint and stop, analyses cancel, live patch
        strengths are persisted."""
        for svc in (self.training, self.transcoder_training, self.circuits, self.features, self.patches):
            try:
                svc.shutdown()
            except Exception as e:  # noqa: BLE001 - one failing service must not block the others
                log.warning("shutdown of %s failed: %s", type(svc).__name__, e)

    def close(self) -> None:
        self.db.close()
