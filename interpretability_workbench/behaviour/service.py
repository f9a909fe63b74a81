"""BehaviourService: the behaviour-removal job (start, list, inspect, cancel, resume, export).

A job runs in a worker thread through phases, each resumable from what the job stored:

* ``training`` (only with ``train_missing``): one training run for the requested layers that have no SAE;
  the job waits for it (a resumed job resumes the run when it was interrupted).
* ``ranking``: per SAE, features ranked by contrast on the search split (stored with the job).
* ``searching``: ``search.run_search``; every candidate is measured exactly (drafts applied through
  ``PatchManager.trial``, one batched forward over both splits from the lowest block the drafts touch) and
  stored before the next one. A resumed job replays the stored candidates (the search is deterministic given
  the seed) and measures only new ones.
* ``finalising``: the best candidate becomes real patches (one per SAE, sharing ``extra.edit_set``) and the
  report is measured again from those patches, with a forward through every block.

The SAEs a job trains are analysed (top contexts, labels) once it is done, not beside the search; the
report's labels are looked up when it is read (``report``).

One job at a time. Progress: ``job`` events (kind ``behaviour_removal``) and one ``behaviour_candidate``
event per evaluated candidate. Jobs left queued/running by a stopped process are marked interrupted.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ..contrast.contrast import LabelLookup
from ..errors import Conflict, Invalid, NotFound, WorkbenchError
from ..events import BehaviourCandidate, JobProgress, Publish
from ..inference.engine import resolve_targets
from ..model.handle import ModelHandle
from ..model.hook_names import expand
from ..model.loader import LoadedModel
from ..model.tokenize import encode_text
from ..patches.config import PatchConfig
from ..patches.manager import PatchManager
from ..sae.compat import check_sae_fits
from ..sae.registry import SAERegistry
from ..store.behaviours import BehaviourJobRecord, BehaviourRepo, CandidateRecord
from ..store.db import new_id
from ..store.runs import RunRecord
from ..training.config import TrainingConfig
from ..workers import Cancel, Handle, Stopped, interrupt_all, join
from .evaluate import Evaluator, PromptSplit, split_prompts
from .export import EditSetExport, export_edit_set
from .ranking import rank_saes
from .report import (
    BehaviourReport,
    EditReport,
    PromptEffect,
    chosen_features,
    export_note,
    held_out_damage,
    pareto_front,
)
from .search import SearchOutcome, run_search
from .types import Candidate, Edit, LayerRanking, SearchRequest, edits_key, score

log = logging.getLogger(__name__)
KIND = "behaviour_removal"
RESUMABLE = ("interrupted", "cancelled", "failed")
POLL_S = 0.25


class TrainingRuns(Protocol):
    """What the job needs of the training service to train missing layers."""

    def start(self, cfg: TrainingConfig) -> str: ...
    def get(self, run_id: str) -> RunRecord: ...
    def resume(self, run_id: str) -> str: ...
    def cancel(self, run_id: str) -> None: ...




class CandidateRow(NamedTuple):
    candidate: Candidate
    attempt: int
    """Which attempt of the job evaluated it."""
    pareto: bool
    """On the Pareto front (held-out target ratio vs held-out budget use)."""
    held_out_budget_use: float


class Plan(NamedTuple):
    sae_ids: list[str]
    """SAEs that fit the loaded model and are searched over."""
    missing_layers: list[int]
    """Requested layers without a resid_post SAE (trained first with ``train_missing``)."""


class BehaviourService:
    def __init__(self, repo: BehaviourRepo, model: ModelHandle, saes: SAERegistry, patches: PatchManager,
                 training: TrainingRuns, labels: LabelLookup, publish: Publish, max_prompt_tokens: int,
                 analyse: Callable[[str], Any] | None = None) -> None:
        """``analyse(sae_id)`` starts the feature analysis of an SAE (the job's trained SAEs, once it is done)."""
        self.repo, self.model, self.saes, self.patches = repo, model, saes, patches
        self.training, self.labels, self.publish = training, labels, publish
        self.analyse = analyse
        self.max_prompt_tokens = max_prompt_tokens
        self._lock = threading.Lock()
        self._active: dict[str, Handle] = {}
        n = repo.interrupt_live()
        if n:
            log.warning("marked %d behaviour job(s) interrupted; POST /api/behaviours/{job_id}/resume continues them", n)

    # queries -----------------------------------------------------------------------------
    def list(self) -> list[BehaviourJobRecord]:
        return self.repo.list()

    def get(self, job_id: str) -> BehaviourJobRecord:
        rec = self.repo.get(job_id)
        if rec is None:
            raise NotFound(f"behaviour job {job_id!r} not found; GET /api/behaviours lists them")
        return rec

    def candidates(self, job_id: str) -> list[Candidate]:
        self.get(job_id)
        return [Candidate.from_dict(c.data) for c in self.repo.candidates(job_id)]

    def candidate_rows(self, job_id: str) -> list[CandidateRow]:
        """Every evaluated candidate with what a table or a Pareto plot of them needs."""
        rec = self.get(job_id)
        b = SearchRequest.from_dict(rec.request).budget
        stored = self.repo.candidates(job_id)
        cands = [Candidate.from_dict(c.data) for c in stored]
        front = set(pareto_front(cands, b.max_kl, b.max_target_change))
        return [CandidateRow(c, r.attempt, c.index in front, held_out_damage(c, b.max_kl, b.max_target_change))
                for c, r in zip(cands, stored)]

    def best(self, job_id: str) -> Candidate | None:
        """The best within-budget candidate so far."""
        feasible = [c for c in self.candidates(job_id) if c.feasible]
        return min(feasible, key=Candidate.sort_key) if feasible else None

    def pareto(self, job_id: str) -> list[int]:
        req = SearchRequest.from_dict(self.get(job_id).request)
        return pareto_front(self.candidates(job_id), req.budget.max_kl, req.budget.max_target_change)

    # planning ----------------------------------------------------------------------------
    def plan(self, lm: LoadedModel, req: SearchRequest) -> Plan:
        """Which SAEs the search uses and which requested layers have none (422 when nothing is usable)."""
        if req.sae_ids is not None:
            ids = list(req.sae_ids)
            for sid in ids:
                self.saes.fitted(sid)  # 404 unknown, 400 when it does not fit the loaded model
        else:
            ids = []
            for row in self.saes.list():
                if row.model_id != lm.model_id or (req.layers is not None and row.layer not in req.layers):
                    continue
                try:
                    check_sae_fits(lm, self.saes.get(row.id).sae, row.id)
                except WorkbenchError:
                    continue
                ids.append(row.id)
        covered = {self.saes.row(s).layer for s in ids if self.saes.row(s).hook_name.endswith("hook_resid_post")}
        missing = [layer for layer in (req.layers or []) if layer not in covered]
        if missing and not req.train_missing:
            raise Invalid(f"layers {', '.join(map(str, missing))} have no resid_post SAE for {lm.model_id}: pass "
                          "train_missing=true to train them first (one run, train_tokens tokens), train them with "
                          "POST /api/training, or leave them out of layers")
        if not ids and not missing:
            raise Invalid(f"no SAE fits {lm.model_id}; train one (POST /api/training) or give layers with "
                          "train_missing=true")
        too_deep = [layer for layer in missing if layer >= lm.n_layers]
        if too_deep:
            raise Invalid(f"layers {too_deep} do not exist: the model has layers 0..{lm.n_layers - 1}")
        return Plan(ids, missing)

    @staticmethod
    def train_batch_size(tokens: int) -> int:
        """Tokens per optimiser step for ``tokens`` training tokens: about 128 steps or more (a power of two
        between 256 and 4096, never above ``tokens``). The training default of 4096 suits millions of tokens;
        at this job's budgets it leaves a handful of steps (60k tokens: 14 steps, held-out FVU 0.52-0.59 at
        layers 6/12/18 of the default model) and SAEs too rough to edit a behaviour with."""
        batch = 256
        while batch < 4096 and batch * 2 * 128 <= tokens:
            batch *= 2
        return min(batch, tokens)

    @classmethod
    def training_config(cls, req: SearchRequest, layers: list[int]) -> TrainingConfig:
        try:
            return TrainingConfig(hook_names=expand(layers, "resid_post"), total_tokens=req.train_tokens,
                                  d_sae=req.train_d_sae, k=req.train_k, corpus=req.train_corpus,
                                  batch_size=cls.train_batch_size(req.train_tokens), analyze=False)
        except ValueError as e:
            raise Invalid(f"training the missing layers: {e}") from None

    # commands ----------------------------------------------------------------------------
    def start(self, req: SearchRequest) -> BehaviourJobRecord:
        """Check the request against the loaded model, store the job and start it in a worker thread."""
        lm = self.model.require()
        resolve_targets(lm, req.targets)  # 422 for unusable targets
        for text in req.positive + req.negative:
            encode_text(lm, text, self.max_prompt_tokens).reported()  # 422 for empty/over-long/one-token prompts
        plan = self.plan(lm, req)
        if plan.missing_layers:
            self.training_config(req, plan.missing_layers)
        with self._lock:
            self._check_free()
            job_id = new_id("bjob")
            self.repo.create(job_id, lm.model_id, req.to_dict())
            self.repo.update(job_id, state={"sae_ids": plan.sae_ids, "missing_layers": plan.missing_layers})
            self._spawn(job_id)
        return self.get(job_id)

    def resume(self, job_id: str) -> BehaviourJobRecord:
        rec = self.get(job_id)
        if rec.status not in RESUMABLE:
            raise Conflict(f"job {job_id} is {rec.status}; only {', '.join(RESUMABLE)} jobs can be resumed")
        lm = self.model.require()
        if lm.model_id != rec.model_id:
            raise Conflict(f"job {job_id} searches {rec.model_id!r} but {lm.model_id!r} is loaded; load it first")
        with self._lock:
            self._check_free()
            self.repo.update(job_id, status="queued", error=None, attempt=rec.attempt + 1)
            self._spawn(job_id)
        return self.get(job_id)

    def cancel(self, job_id: str) -> None:
        rec = self.get(job_id)
        with self._lock:
            h = self._active.get(job_id)
        if h is None or not h.thread.is_alive() or rec.status not in ("queued", "running"):
            raise Conflict(f"job {job_id} is not running (status {rec.status})")
        h.cancel.set()

    def delete(self, job_id: str) -> None:
        """Forget a job and its candidates (its patches stay)."""
        rec = self.get(job_id)
        with self._lock:
            h = self._active.get(job_id)
            if h is not None and h.thread.is_alive():
                raise Conflict(f"job {job_id} is {rec.status}; cancel it first")
            self.repo.delete(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> BehaviourJobRecord:
        join(self._lock, self._active, job_id, timeout)
        return self.get(job_id)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop running jobs before their next candidate (marked interrupted; resumable)."""
        interrupt_all(self._lock, self._active, timeout)

    def make_patches(self, job_id: str, index: int, *, enabled: bool = True) -> list[PatchConfig]:
        """Real patches from any evaluated candidate (e.g. another point of the Pareto front)."""
        rec = self.get(job_id)
        cands = {c.index: c for c in self.candidates(job_id)}
        if index not in cands:
            raise NotFound(f"job {job_id} has no candidate {index} (it evaluated {len(cands)})")
        lm = self.model.require()
        if lm.model_id != rec.model_id:
            raise Conflict(f"job {job_id} searched {rec.model_id!r} but {lm.model_id!r} is loaded; load it first")
        return self._create_patches(job_id, cands[index].edits, enabled, f"{job_id}/{index}", rec.request.get("name"))

    def export(self, job_id: str) -> EditSetExport:
        rec = self.get(job_id)
        patch_ids = list((rec.result or {}).get("patch_ids") or [])
        return export_edit_set(self.patches, self.model, patch_ids, job_id,
                               meta={"behaviour_job": job_id, "patch_ids": patch_ids})

    # internals ---------------------------------------------------------------------------
    def _check_free(self) -> None:
        for jid, h in self._active.items():
            if h.thread.is_alive():
                raise Conflict(f"behaviour job {jid} is running; one at a time — cancel it "
                               f"(POST /api/behaviours/{jid}/cancel) or wait for it to finish")

    def _spawn(self, job_id: str) -> None:
        cancel = Cancel()
        t = threading.Thread(target=self._run, args=(job_id, cancel), name=f"behaviour-{job_id}", daemon=True)
        self._active = {k: v for k, v in self._active.items() if v.thread.is_alive()}
        self._active[job_id] = Handle(t, cancel)
        t.start()

    def _progress(self, job_id: str, status: str, detail: str | None = None) -> None:
        rec = self.repo.get(job_id)
        if rec is None:
            return
        total = int(rec.request.get("max_evaluations", 0))
        self.publish(JobProgress(job_id=job_id, kind=KIND, status=status, done=rec.n_evaluated, total=total,
                                 detail=detail if detail is not None else rec.phase))

    def _phase(self, job_id: str, phase: str) -> None:
        self.repo.update(job_id, phase=phase)
        self._progress(job_id, "running", phase)

    def _run(self, job_id: str, cancel: Cancel) -> None:
        t0 = time.perf_counter()
        try:
            rec = self.get(job_id)
            req = SearchRequest.from_dict(rec.request)
            state = dict(rec.state)
            self.repo.update(job_id, status="running")
            lm = self._require(rec)
            if state.get("missing_layers") and not state.get("trained_sae_ids"):
                self._phase(job_id, "training")
                state["trained_sae_ids"] = self._train(job_id, req, state, cancel)
                self.repo.update(job_id, state=state)
            sae_ids = list(state.get("sae_ids", [])) + list(state.get("trained_sae_ids", []))
            split = split_prompts(req.positive, req.negative, req.held_out_fraction, req.seed)
            if "rankings" not in state:
                self._phase(job_id, "ranking")
                rankings = self._rank(lm, req, split, sae_ids)
                state["rankings"] = [r.to_dict() for r in rankings]
                self.repo.update(job_id, state=state)
            rankings = [LayerRanking.from_dict(r) for r in state["rankings"]]
            self._phase(job_id, "searching")
            evaluator = Evaluator(lm, split, resolve_targets(lm, req.targets).ids, self.max_prompt_tokens)
            with self.patches.original:
                evaluator.baseline(sorted({r.layer for r in rankings}))
            outcome = run_search(rankings, req, self._evaluator_fn(job_id, rec.attempt, req, lm, evaluator, cancel))
            self._phase(job_id, "finalising")
            report = self._finalise(job_id, req, lm, evaluator, rankings, outcome, state,
                                    seconds=float(state.get("seconds", 0.0)) + time.perf_counter() - t0)
            self.repo.update(job_id, status="done", phase="done", result=report.to_dict())
            self._progress(job_id, "done", report.message or "done")
            self._analyse_trained(job_id)
        except Stopped as s:
            self._stopped(job_id, s.reason, t0)
        except Exception as e:  # noqa: BLE001 - a failed job is reported, never crashes the server
            msg = e.detail if isinstance(e, WorkbenchError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, WorkbenchError):
                log.error("behaviour job %s failed: %s\n%s", job_id, msg, traceback.format_exc())
            self.repo.update(job_id, status="failed", error=msg)
            self._progress(job_id, "failed", msg)

    def _analyse_trained(self, job_id: str) -> None:
        """Start the feature analysis of the SAEs the job trained (their training run skips it: analyses
        running beside the search would compete with it for the model, ~5x slower per candidate on a CPU)."""
        rec = self.repo.get(job_id)
        if rec is None or self.analyse is None or rec.state.get("analysis_started"):
            return
        for sid in rec.state.get("trained_sae_ids", []):
            try:
                self.analyse(sid)
            except Exception as e:  # noqa: BLE001 - best effort, as after any training run
                log.warning("could not start analysis of %s: %s", sid, e)
        self.repo.update(job_id, state={**rec.state, "analysis_started": True})

    def report(self, job_id: str) -> dict[str, Any] | None:
        """The stored report, with the labels of the chosen features looked up now where the report has none
        (the SAEs a job trains are analysed after it finishes)."""
        rec = self.get(job_id)
        if not rec.result:
            return rec.result
        out = dict(rec.result)
        edits = []
        for e in out.get("edits") or []:
            missing = [f["index"] for f in e.get("features", []) if f.get("label") is None and not f.get("top_tokens")]
            labs = self.labels(e["sae_id"], missing) if missing else {}
            feats = []
            for f in e.get("features", []):
                lab = labs.get(f["index"])
                if lab is not None:
                    f = {**f, "label": getattr(lab, "label", None),
                         "top_tokens": list(getattr(lab, "top_tokens", []) or [])[:10]}
                feats.append(f)
            edits.append({**e, "features": feats})
        out["edits"] = edits
        return out

    def _stopped(self, job_id: str, reason: str, t0: float) -> None:
        rec = self.repo.get(job_id)
        if rec is None:
            return
        state = dict(rec.state)
        state["seconds"] = float(state.get("seconds", 0.0)) + time.perf_counter() - t0
        self.repo.update(job_id, status=reason, state=state)
        self._progress(job_id, reason, f"{reason} during {rec.phase}; POST /api/behaviours/{job_id}/resume continues")

    def _require(self, rec: BehaviourJobRecord) -> LoadedModel:
        lm = self.model.require()
        if lm.model_id != rec.model_id:
            raise Conflict(f"job {rec.id} searches {rec.model_id!r} but {lm.model_id!r} is loaded; load it and resume")
        return lm

    def _train(self, job_id: str, req: SearchRequest, state: dict[str, Any], cancel: Cancel) -> list[str]:
        run_id = state.get("training_run")
        if run_id is None:
            run_id = self.training.start(self.training_config(req, list(state["missing_layers"])))
            state["training_run"] = run_id
            self.repo.update(job_id, state=state)
        elif self.training.get(run_id).status in ("interrupted", "cancelled", "failed"):
            self.training.resume(run_id)
        while True:
            rec = self.training.get(run_id)
            if rec.status == "done":
                return rec.sae_ids
            if rec.status in ("failed", "cancelled", "interrupted"):
                raise Conflict(f"training run {run_id} for layers {state['missing_layers']} is {rec.status}"
                               f"{': ' + rec.error if rec.error else ''}; resume the job to resume the run")
            if cancel.is_set():
                if cancel.reason == "cancelled":  # at shutdown the training service interrupts its run itself
                    try:
                        self.training.cancel(run_id)
                    except WorkbenchError:
                        pass
                raise Stopped(cancel.reason)
            time.sleep(POLL_S)

    def _rank(self, lm: LoadedModel, req: SearchRequest, split: PromptSplit, sae_ids: list[str]) -> list[LayerRanking]:
        saes = [(sid, self.saes.fitted(sid).sae) for sid in sae_ids]
        saes.sort(key=lambda s: (s[1].cfg.layer, s[0]))
        return rank_saes(lm, saes, split.search_positive, split.search_negative, req.positions, req.max_features,
                         scope=self.patches.original, max_tokens=self.max_prompt_tokens)

    def _evaluator_fn(self, job_id: str, attempt: int, req: SearchRequest, lm: LoadedModel, evaluator: Evaluator,
                      cancel: Cancel) -> Callable[[list[Edit], str], Candidate]:
        stored = {c.key: Candidate.from_dict(c.data) for c in self.repo.candidates(job_id)}
        counter = [len(stored)]
        best: list[Candidate | None] = [None]
        for c in stored.values():
            if c.feasible and (best[0] is None or c.sort_key() < best[0].sort_key()):
                best[0] = c

        def evaluate(edits: list[Edit], stage: str) -> Candidate:
            key = edits_key(edits)
            if key in stored:
                return stored[key]
            if cancel.is_set():
                raise Stopped(cancel.reason)
            drafts = [self.patches.draft(sae_id=e.sae_id, features=e.features, mode=e.mode, strength=e.strength)
                      for e in edits]
            with self.patches.trial(drafts) as lowest:
                if self.model.lm is not lm:
                    raise Conflict("another model was loaded during the search; load the job's model and resume")
                measured = evaluator.measure(lowest)
            search, held = evaluator.metrics(measured)
            feasible, objective, use = score(search, req.budget, req.search_margin)
            c = Candidate(counter[0], stage, edits, search, held, feasible, objective, use)
            self.repo.add_candidate(CandidateRecord(job_id, c.index, key, stage, attempt, c.to_dict(), time.time()))
            counter[0] += 1
            stored[key] = c
            if c.feasible and (best[0] is None or c.sort_key() < best[0].sort_key()):
                best[0] = c
            self.publish(BehaviourCandidate(job_id=job_id, index=c.index, stage=stage,
                                            edits=[e.to_dict() for e in edits], search=search.to_dict(),
                                            held_out=held.to_dict(), feasible=feasible, objective=objective,
                                            budget_use=use, best_index=best[0].index if best[0] else None))
            self._progress(job_id, "running", "searching")
            return c

        return evaluate

    def _create_patches(self, edit_set: str, edits: list[Edit], enabled: bool, tag: str,
                        name: str | None) -> list[PatchConfig]:
        made: list[PatchConfig] = []
        try:
            for e in edits:
                made.append(self.patches.create(
                    sae_id=e.sae_id, features=e.features, mode=e.mode, strength=e.strength, enabled=enabled,
                    name=f"{name or 'remove behaviour'} ({tag}): {e.mode} {len(e.features)} @ {e.hook_name}",
                    extra={"behaviour_job": edit_set, "edit_set": edit_set, "candidate": tag}))
        except Exception:
            for cfg in made:
                self.patches.delete(cfg.id)
            raise
        return made

    def _finalise(self, job_id: str, req: SearchRequest, lm: LoadedModel, evaluator: Evaluator,
                  rankings: list[LayerRanking], outcome: SearchOutcome, state: dict[str, Any],
                  seconds: float) -> BehaviourReport:
        tt = resolve_targets(lm, req.targets)
        cands = outcome.candidates
        front = pareto_front(cands, req.budget.max_kl, req.budget.max_target_change)
        best = outcome.best
        if best is None:
            return BehaviourReport(
                target_ids=tt.ids, target_tokens=[lm.tokenizer.decode([i]) for i in tt.ids], target_notes=tt.notes,
                feasible=False, held_out_feasible=False, held_out=None, search=None, held_out_positive=[],
                held_out_negative=[], edits=[], patch_ids=[], edit_set=job_id, best_candidate=None, pareto=front,
                peft_exportable=False, export_note="no patch was made", n_evaluated=len(cands),
                exhausted=outcome.exhausted, seconds=seconds,
                message="no candidate stayed within the budget on the search split, so no patch was made: loosen "
                        "the budget, add SAEs at other layers, or make patches from a Pareto candidate "
                        f"(POST /api/behaviours/{job_id}/candidates/{{index}}/patch)")
        patch_ids = [p for p in state.get("patch_ids", []) if self._exists(p)]
        if not patch_ids:
            made = self._create_patches(job_id, best.edits, req.enable_result, f"{job_id}/{best.index}", req.name)
            patch_ids = [p.id for p in made]
            state["patch_ids"] = patch_ids
            self.repo.update(job_id, state=state)
        with self.patches.using(patch_ids):
            if self.model.lm is not lm:
                raise Conflict("another model was loaded before the report; load the job's model and resume")
            measured = evaluator.measure()
        search, held = evaluator.metrics(measured)
        by_sae = {r.sae_id: r for r in rankings}
        edits = []
        for pid in patch_ids:
            cfg = self.patches.get(pid)
            labels = self.labels(cfg.sae_id or "", list(cfg.features))
            edits.append(EditReport(pid, cfg.sae_id or "", cfg.hook_name, self.saes.row(cfg.sae_id or "").layer,
                                    cfg.mode, cfg.strength, cfg.rank,
                                    chosen_features(cfg.features, by_sae.get(cfg.sae_id or ""), labels)))
        ok, note = export_note([e.mode for e in edits])
        b = req.budget
        return BehaviourReport(
            target_ids=tt.ids, target_tokens=[lm.tokenizer.decode([i]) for i in tt.ids], target_notes=tt.notes,
            feasible=b.use(search.kl_mean, search.max_target_change) <= 1.0,
            held_out_feasible=b.use(held.kl_mean, held.max_target_change) <= 1.0, held_out=held, search=search,
            held_out_positive=[PromptEffect(**p) for p in evaluator.per_prompt(measured, "held_positive")],
            held_out_negative=[PromptEffect(**p) for p in evaluator.per_prompt(measured, "held_negative")],
            edits=edits, patch_ids=patch_ids, edit_set=job_id, best_candidate=best.index, pareto=front,
            peft_exportable=ok, export_note=note, n_evaluated=len(cands), exhausted=outcome.exhausted,
            seconds=seconds)

    def _exists(self, patch_id: str) -> bool:
        try:
            self.patches.get(patch_id)
            return True
        except NotFound:
            return False

