"""WorkbenchState: the composition root. It builds the store, the event bus, the model handle and every
service, hands each service exactly the collaborators it uses, and wires the cross-service reactions as
event-bus subscriptions ("analyse the new SAEs after training").

Only ``server/`` and ``cli/`` import this module; nothing below them does.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from .activations.corpora import CorpusService
from .activations.corpus import load_texts
from .behaviour.service import BehaviourService
from .circuits.registry import TranscoderRegistry
from .circuits.service import CircuitService
from .contrast.contrast import ContrastService
from .events import EventBus, TrainingDone
from .evals.service import EvalService
from .features.explanations import EndpointSettings, ExplanationService
from .features.map_service import FeatureMapService
from .features.service import FeatureService
from .inference.engine import InferenceEngine
from .model.handle import LoadDefaults, ModelHandle
from .model.loader import LoadedModel
from .patches.manager import PatchManager
from .patches.peft_io import PatchTransfer
from .provenance.service import ProvenanceService
from .sae.registry import PretrainedImporter, SAERegistry
from .settings import Settings
from .store.behaviours import BehaviourRepo
from .store.circuits import CircuitRepo
from .store.corpora import CorpusRepo
from .store.db import Database
from .store.features import FeatureRepo
from .store.jobs import JobRepo
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
                                              s.allow_downloads, s.device_map, s.max_memory or None), publish)
        # services, in data-flow order: each gets exactly what it uses
        self.corpora = CorpusService(CorpusRepo(self.db), s.corpora_dir, self.model, publish,
                                     max_bytes=s.max_corpus_bytes, data_dirs=s.data_dirs)
        self.saes = SAERegistry(SAERepo(self.db), s.artifacts_dir / "saes", self.model)
        self.pretrained = PretrainedImporter(self.saes, self.model, s.sae_registry_files, downloads=s.sae_downloads)
        feature_repo = FeatureRepo(self.db)
        self.patches = PatchManager(PatchRepo(self.db), self.saes, self.model, s.artifacts_dir / "patches",
                                    mean_activations=feature_repo.mean_activations)
        original = self.patches.original  # the model lock with every patch off: recording never sees patches
        self.training = TrainingService(RunRepo(self.db), self.model, self.saes, self.corpora, publish, original,
                                        s.runs_dir)
        self.transcoders = TranscoderRegistry(TranscoderSetRepo(self.db), self.saes, self.model)
        self.transcoder_training = TranscoderTrainingService(RunRepo(self.db), self.model, self.transcoders,
                                                             self.corpora, publish, original,
                                                             busy=self.training.active_run)
        self.features = FeatureService(feature_repo, self.saes, self.model, self.corpora, publish, original,
                                       context_size=s.context_size, max_prompt_tokens=s.max_prompt_tokens,
                                       analysis_tokens=s.analysis_tokens)
        self.explanations = ExplanationService(
            self.features.repo, JobRepo(self.db), self.saes, self.model,
            lambda lm, sae: self.features.analysis_contexts(lm, sae), self.features.vocab, publish, original,
            EndpointSettings(s.explainer_url, s.explainer_model, s.explainer_api_key, s.explainer_timeout_s),
            cache_dir=s.model_cache_dir)
        self.feature_maps = FeatureMapService(self.saes, feature_repo, JobRepo(self.db), publish)
        self.evals = EvalService(self.saes, JobRepo(self.db), self.features.analysis_contexts,
                                 lambda corpus: load_texts(self.corpora.path(corpus)), publish, original)
        labels = self.features.queries
        self.inference = InferenceEngine(self.model, self.patches, s.max_prompt_tokens,
                                         max_batch=s.max_concurrent_inference, batch_window_ms=s.batch_window_ms)
        self.patch_transfer = PatchTransfer(self.patches, self.saes, self.model, max_zip_bytes=s.max_body_bytes * 4)
        self.contrast = ContrastService(self.model, self.saes, labels.labels, original, s.max_prompt_tokens)
        self.provenance = ProvenanceService(self.model, self.saes, labels.label_texts, original, s.max_prompt_tokens)
        self.behaviours = BehaviourService(BehaviourRepo(self.db), self.model, self.saes, self.patches, self.training,
                                           labels.labels, publish, s.max_prompt_tokens,
                                           analyse=lambda sid: self.features.start_analysis(sid))
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
        """Stop background work (server exit): behaviour jobs, runs and transcoder runs stop (resumable), circuit
        jobs and analyses cancel, live patch strengths are persisted, corpus token counts stop (resumed at the
        next start), the batcher stops."""
        for svc in (self.behaviours, self.training, self.transcoder_training, self.circuits, self.features,
                    self.explanations, self.feature_maps, self.evals, self.patches, self.corpora, self.inference):
            try:
                svc.shutdown()
            except Exception as e:  # noqa: BLE001 - one failing service must not block the others
                log.warning("shutdown of %s failed: %s", type(svc).__name__, e)

    def close(self) -> None:
        self.db.close()
