"""PatchManager: patches stored through ``store/patches.py``, kept in memory and applied to the live model.

Patches are re-applied whenever a model is loaded (``ModelHandle.on_change``) if they were made for that
model. Strength and enabled changes act in place on the wrappers; ``using(ids)`` runs a block with exactly
those patches on (everything else off) under the model lock — ``using([])`` is the original model.
"""
from __future__ import annotations

import logging
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from safetensors.torch import load_file, save_file

from ..errors import Conflict, Invalid, NotFound
from ..model.handle import ModelHandle
from ..sae.registry import SAERegistry
from ..store.artifacts import atomic_dir, safe_join
from ..store.db import new_id, now
from ..store.patches import PatchRepo
from . import inject
from .config import DEFAULT_STRENGTH, PatchConfig
from .lora import ModuleDelta, feature_deltas, layer_of_path, scaling_for
from .units import UNIT_MODES, MeanActivations, residual_norm, typical_unit

log = logging.getLogger(__name__)
DELTAS_FILE = "deltas.safetensors"


def deltas_to_tensors(deltas: list[ModuleDelta]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in deltas:
        out[f"{d.path}|{d.kind}|A"] = d.A.float().contiguous().cpu()
        out[f"{d.path}|{d.kind}|B"] = d.B.float().contiguous().cpu()
        if d.bias is not None:
            out[f"{d.path}|{d.kind}|bias"] = d.bias.float().contiguous().cpu()
    return out


def tensors_to_deltas(t: dict[str, Any]) -> list[ModuleDelta]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for key, v in t.items():
        path, kind, part = key.rsplit("|", 2)
        groups.setdefault((path, kind), {})[part] = v
    return [ModuleDelta(p, k, g["A"], g["B"], g.get("bias")) for (p, k), g in groups.items()]  # type: ignore[arg-type]


class OriginalScope:
    """A reusable context manager: holds the model lock and switches every patch off inside the block
    (the original model), restoring the previous switches on exit. Re-entrant."""

    def __init__(self, manager: "PatchManager") -> None:
        self._m = manager
        self._saved: list[dict[str, bool]] = []

    def __enter__(self) -> None:
        self._m.model.lock.acquire()
        try:
            self._saved.append(self._m._switch_only(set()))
        except BaseException:
            self._m.model.lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._m._restore(self._saved.pop())
        finally:
            self._m.model.lock.release()


class PatchManager:
    """Live patches: configs kept in memory (loaded once from the ``patches`` table), applied as wrapper
    modules on the loaded model. Strength changes from the live slider (``set_strength``) act in memory
    only; ``update`` (the REST PATCH) and ``commit`` persist."""

    def __init__(self, repo: PatchRepo, saes: SAERegistry, model: ModelHandle, root: Path,
                 mean_activations: MeanActivations | None = None) -> None:
        """``mean_activations``: the analysed features' mean activation when active (typical-activation units)."""
        self.repo, self.saes, self.model = repo, saes, model
        self.mean_activations = mean_activations
        self.root = Path(root)
        self._lock = threading.RLock()
        self._configs: dict[str, PatchConfig] = {}
        for d in repo.list():
            cfg = PatchConfig.from_dict(d)
            self._configs[cfg.id] = cfg
        self._applied: dict[str, list[str]] = {}  # patch id -> wrapped module paths
        self._errors: dict[str, str] = {}  # patch id -> why it is not applied
        self._dirty: set[str] = set()  # live strength changes not yet persisted
        self.original = OriginalScope(self)
        """``with patches.original:`` — the original model (every patch off) under the model lock."""
        model.on_change(self._on_model_change)

    # store ---------------------------------------------------------------------------------
    def _save(self, cfg: PatchConfig, *, new: bool = False) -> None:
        cfg.updated_at = now()
        self._configs[cfg.id] = cfg
        if new:
            self.repo.insert(cfg.to_dict())
        else:
            self.repo.save(cfg.to_dict())
        self._dirty.discard(cfg.id)

    def list(self) -> list[PatchConfig]:
        return sorted(self._configs.values(), key=lambda c: c.created_at)

    def get(self, patch_id: str) -> PatchConfig:
        cfg = self._configs.get(patch_id)
        if cfg is None:
            raise NotFound(f"patch {patch_id!r} not found; GET /api/patches lists them")
        return cfg

    def status(self, patch_id: str) -> tuple[bool, str | None]:
        """(applied to the live model, why not)."""
        return patch_id in self._applied, self._errors.get(patch_id)

    # create / update / delete ----------------------------------------------------------------
    def draft(self, *, sae_id: str, features: list[int], mode: str, strength: float | None = None,
              name: str | None = None, enabled: bool = True, extra: dict | None = None,
              strength_unit: str = "absolute", unit_scale: float | None = None,
              origin: str | None = None) -> PatchConfig:
        """A validated patch config for the loaded model, neither applied nor stored (``create`` and
        ``trial`` take it from here). ``strength_unit='typical_activation'`` (steer, clamp) resolves one unit
        now (``patches/units.py``) unless ``unit_scale`` gives it (an imported patch keeps its own);
        ``origin`` records where it was made (shown by the UI)."""
        fit = self.saes.fitted(sae_id)  # 404 unknown SAE, 400 when it does not fit the loaded model
        scfg = fit.sae.cfg
        if scfg.extra.get("kind") == "transcoder" and mode in ("ablate", "scale"):
            raise Invalid(f"{sae_id} is a transcoder: ablate or scale its features with clamp (value 0 ablates, "
                          "exactly as a circuit intervention) or add them with steer")
        if features and max(features) >= scfg.d_sae:
            raise Invalid(f"feature {max(features)} is out of range: SAE {sae_id} has features 0..{scfg.d_sae - 1}")
        scale, source = 1.0, ""
        if strength_unit == "typical_activation" and mode in UNIT_MODES and features:
            if unit_scale is not None:
                scale, source = float(unit_scale), "given"
            else:
                scale, source = typical_unit(sae_id, fit.sae, list(features), self.mean_activations,
                                             lambda: residual_norm(fit.lm, fit.sae, self.original))
        try:
            return PatchConfig(
                id=new_id("patch"), name=name or f"{mode} {_feature_list(features)} @ {scfg.hook_name}",
                mode=mode, features=list(features), sae_id=sae_id,
                strength=strength if strength is not None else DEFAULT_STRENGTH.get(mode, 1.0),
                enabled=enabled, model_id=fit.lm.model_id, hook_name=scfg.hook_name,
                strength_unit=strength_unit, unit_scale=scale, unit_source=source,
                extra={**(extra or {}), **({"origin": origin} if origin else {})})
        except ValueError as e:
            raise Invalid(str(e)) from None

    def create(self, *, sae_id: str, features: list[int], mode: str, strength: float | None = None,
               name: str | None = None, enabled: bool = True, extra: dict | None = None,
               strength_unit: str = "absolute", unit_scale: float | None = None,
               origin: str | None = None) -> PatchConfig:
        """A new patch (``draft``'s arguments), applied at once and stored."""
        cfg = self.draft(sae_id=sae_id, features=features, mode=mode, strength=strength, name=name,
                         enabled=enabled, extra=extra, strength_unit=strength_unit, unit_scale=unit_scale,
                         origin=origin)
        with self.model.lock:
            self._apply(cfg)  # raises before anything is stored if the edit cannot be built
            self._save(cfg, new=True)
        return cfg

    def create_adapter(self, deltas: list[ModuleDelta], *, name: str, strength: float = 1.0,
                       extra: dict | None = None) -> PatchConfig:
        """A patch from raw deltas (an imported LoRA adapter); validated against the live model."""
        lm = self.model.require()
        cfg = PatchConfig(id=new_id("patch"), name=name, mode="adapter", strength=strength,
                          model_id=lm.model_id, rank=max(d.rank for d in deltas), extra=extra or {})
        folder = safe_join(self.root, cfg.id)
        with atomic_dir(folder) as tmp:
            save_file(deltas_to_tensors(deltas), str(tmp / DELTAS_FILE))
        try:
            with self.model.lock:
                self._apply(cfg)
                self._save(cfg, new=True)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cfg

    def update(self, patch_id: str, *, strength: float | None = None, enabled: bool | None = None,
               name: str | None = None, features: list[int] | None = None) -> PatchConfig:
        """Change a patch on the live model and persist it (the REST PATCH)."""
        with self.model.lock:
            cfg = PatchConfig.from_dict(self.get(patch_id).to_dict())
            if name is not None:
                cfg.name = name
            if features is not None and list(features) != cfg.features:
                if cfg.mode == "adapter":
                    raise Invalid("an imported adapter has no features to change")
                try:
                    new = PatchConfig.from_dict({**cfg.to_dict(), "features": list(features)})
                except ValueError as e:
                    raise Invalid(str(e)) from None
                old = self.get(patch_id)
                self._unapply(patch_id)
                try:
                    self._apply(new)
                except Exception:
                    self._apply(old)
                    raise
                cfg = new
            if strength is not None:
                cfg = self._with_strength(cfg, strength)
                self._set(patch_id, cfg)
            if enabled is not None:
                cfg.enabled = bool(enabled)
                for path in self._applied.get(patch_id, []):
                    inject.set_entry(self._model(), path, patch_id, enabled=cfg.enabled)
            self._save(cfg)
            return cfg

    @staticmethod
    def _with_strength(cfg: PatchConfig, strength: float) -> PatchConfig:
        try:
            return PatchConfig.from_dict({**cfg.to_dict(), "strength": strength})
        except ValueError as e:
            raise Invalid(str(e)) from None

    def set_strength(self, patch_id: str, strength: float) -> PatchConfig:
        """The live slider path: change the scaling in place, in memory only (``commit`` persists it)."""
        with self.model.lock:
            cfg = self._with_strength(self.get(patch_id), strength)
            self._set(patch_id, cfg)
            self._configs[patch_id] = cfg
            self._dirty.add(patch_id)
            return cfg

    def commit(self, patch_ids: list[str] | None = None) -> None:
        """Persist live strength changes (all pending ones, or those of ``patch_ids``)."""
        with self.model.lock:
            for pid in list(self._dirty if patch_ids is None else set(patch_ids) & self._dirty):
                cfg = self._configs.get(pid)
                if cfg is not None:
                    self._save(cfg)
                self._dirty.discard(pid)

    def delete(self, patch_id: str) -> None:
        with self.model.lock:
            self.get(patch_id)
            self._unapply(patch_id)
            self.repo.delete(patch_id)
            self._configs.pop(patch_id, None)
            self._dirty.discard(patch_id)
            self._errors.pop(patch_id, None)
        shutil.rmtree(safe_join(self.root, patch_id), ignore_errors=True)

    # application ---------------------------------------------------------------------------------
    def _model(self):  # noqa: ANN202
        return self.model.require().model

    def deltas_for(self, cfg: PatchConfig) -> list[ModuleDelta]:
        """Unit-strength deltas of a weight-delta patch on the live model."""
        if cfg.mode == "adapter":
            return tensors_to_deltas(load_file(str(safe_join(self.root, cfg.id, DELTAS_FILE))))
        sae = self.saes.get(cfg.sae_id).sae
        with self.model.lock:
            return feature_deltas(self._model(), sae, cfg.features, cfg.mode)

    def _apply(self, cfg: PatchConfig) -> None:
        paths = self._attach(cfg)
        cfg.target_modules = paths
        self._applied[cfg.id] = paths
        self._errors.pop(cfg.id, None)

    def _attach(self, cfg: PatchConfig) -> list[str]:
        """Put the patch's wrappers entries on the live model; returns the wrapped module paths (nothing is
        left behind when it fails)."""
        lm = self.model.require()
        model = lm.model
        paths: list[str] = []
        try:
            if cfg.mode == "clamp":
                sae = self.saes.get(cfg.sae_id).sae
                from ..model.hook_map import resolve

                hp = resolve(model, sae.cfg.hook_name)
                if hp.io == "input" and sae.cfg.extra.get("kind") == "transcoder":
                    w = inject.wrap(model, hp.path, inject.ClampMLP)  # transcoder features: read the MLP input
                elif hp.io != "output" or not sae.cfg.hook_name.endswith("resid_post"):
                    raise Invalid("clamp needs an SAE on a resid_post hook (or a transcoder)")
                else:
                    w = inject.wrap(model, hp.path, inject.ClampBlock)
                paths.append(hp.path)
                w.add(cfg.id, sae, cfg.features, cfg.absolute_strength, cfg.enabled)
                cfg.rank = 0
            else:
                deltas = self.deltas_for(cfg)
                scaling = scaling_for(cfg.mode, cfg.absolute_strength)
                for d in deltas:
                    target = inject.base_of_path(model, d.path)
                    _check_shape(target, d)
                for d in deltas:
                    w = inject.wrap(model, d.path, inject.DeltaLayer)
                    paths.append(d.path)
                    w.add(cfg.id, d, scaling, cfg.enabled)
                cfg.rank = max(d.rank for d in deltas)
        except Exception:
            for p in paths:
                inject.remove_entry(model, p, cfg.id)
            raise
        return paths

    def _unapply(self, patch_id: str) -> None:
        paths = self._applied.pop(patch_id, [])
        lm = self.model.lm
        if paths and lm is not None:
            for p in paths:
                inject.remove_entry(lm.model, p, patch_id)

    def _set(self, patch_id: str, cfg: PatchConfig) -> None:
        model = self._model()
        for path in self._applied.get(patch_id, []):
            if cfg.mode == "clamp":
                inject.set_entry(model, path, patch_id, value=cfg.absolute_strength)
            else:
                inject.set_entry(model, path, patch_id, scaling=scaling_for(cfg.mode, cfg.absolute_strength))

    def _on_model_change(self, old: Any, new: Any) -> None:
        if old is not None:
            for pid, paths in list(self._applied.items()):
                for p in paths:
                    inject.remove_entry(old.model, p, pid)
        self._applied.clear()
        self._errors.clear()
        for cfg in self.list():
            if cfg.model_id != new.model_id:
                self._errors[cfg.id] = f"made for {cfg.model_id!r}; {new.model_id!r} is loaded"
                continue
            try:
                self._apply(cfg)
            except Exception as e:  # noqa: BLE001 - one broken patch must not block a model load
                self._errors[cfg.id] = f"{type(e).__name__}: {getattr(e, 'detail', e)}"
                log.warning("patch %s not re-applied: %s", cfg.id, self._errors[cfg.id])

    # selection -----------------------------------------------------------------------------------
    def resolve_ids(self, patch_ids: list[str] | None) -> list[str]:
        """None -> the enabled, applied patches; otherwise check each id (404 unknown, 409 not applied)."""
        if patch_ids is None:
            return [c.id for c in self.list() if c.enabled and c.id in self._applied]
        out = []
        for pid in dict.fromkeys(patch_ids):
            self.get(pid)
            if pid not in self._applied:
                raise Conflict(f"patch {pid} is not applied to the loaded model: {self._errors.get(pid, 'unknown')}")
            out.append(pid)
        return out

    def lowest_layer(self, patch_ids: list[str]) -> int | None:
        """Lowest block any of the patches touches (0 for embeddings); None without patches."""
        model = self._model()
        layers = [layer_of_path(model, p) for pid in patch_ids for p in self._applied.get(pid, [])]
        return min(layers) if layers else None

    def _switch_only(self, want: set[str]) -> dict[str, bool]:
        """Enable exactly ``want`` among the applied patches; returns the previous switches."""
        model = self._model()
        before = {pid: self._configs[pid].enabled if pid in self._configs else False for pid in self._applied}
        for pid, paths in self._applied.items():
            for p in paths:
                inject.set_entry(model, p, pid, enabled=pid in want)
        return before

    def _restore(self, switches: dict[str, bool]) -> None:
        lm = self.model.lm
        if lm is None:
            return
        for pid, paths in self._applied.items():
            for p in paths:
                inject.set_entry(lm.model, p, pid, enabled=switches.get(pid, False))

    @contextmanager
    def using(self, patch_ids: list[str]) -> Iterator[None]:
        """Exactly ``patch_ids`` on, all others off, for the duration of the block (holds the model lock)."""
        with self.model.lock:
            before = self._switch_only(set(patch_ids))
            try:
                yield
            finally:
                self._restore(before)

    @contextmanager
    def trial(self, drafts: list[PatchConfig]) -> Iterator[int | None]:
        """The model with exactly ``drafts`` on (unsaved configs from ``draft``; every stored patch off) for the
        duration of the block, under the model lock; their wrapper entries are removed on exit. The drafts go
        through the same deltas and wrappers as stored patches, so what a trial measures is what ``create``
        of the same configs gives. Yields the lowest block the drafts touch (0 for embeddings; None without
        drafts): blocks below it compute what the original model does."""
        with self.model.lock:
            model = self._model()
            attached: list[tuple[str, list[str]]] = []
            before = self._switch_only(set())
            try:
                for cfg in drafts:
                    if cfg.id in self._configs or any(cfg.id == pid for pid, _ in attached):
                        raise Conflict(f"{cfg.id} is a stored patch or given twice; trial takes fresh drafts")
                    if cfg.mode == "adapter":
                        raise Invalid("trial takes feature patches (ablate, scale, steer, clamp)")
                    paths = self._attach(cfg)
                    attached.append((cfg.id, paths))
                    for p in paths:
                        inject.set_entry(model, p, cfg.id, enabled=True)
                layers = [layer_of_path(model, p) for _, paths in attached for p in paths]
                yield min(layers) if layers else None
            finally:
                for pid, paths in attached:
                    for p in paths:
                        inject.remove_entry(model, p, pid)
                self._restore(before)

    def suspended(self) -> Any:
        """The original model for the duration of the block (for analyses that must not see patches)."""
        return self.using([])

    def shutdown(self) -> None:
        """Persist live strength changes nobody committed."""
        self.commit()


def _feature_list(features: list[int], shown: int = 8) -> str:
    head = ",".join(map(str, features[:shown]))
    return head if len(features) <= shown else f"{head},… ({len(features)} features)"


def _check_shape(module: Any, d: ModuleDelta) -> None:
    from .lora import effective_weight, module_kind

    kind = module_kind(module)
    if kind != d.kind:
        raise Invalid(f"{d.path} is a {kind} layer but the delta is for a {d.kind} layer")
    W = effective_weight(module)
    want_in = W.shape[0] if kind == "embedding" else W.shape[1]
    want_out = W.shape[1] if kind == "embedding" else W.shape[0]
    if d.A.shape[1] != want_in or d.B.shape[0] != want_out or d.B.shape[1] != d.A.shape[0]:
        raise Invalid(f"delta for {d.path} has A {tuple(d.A.shape)}, B {tuple(d.B.shape)}; the layer needs "
                      f"A [r {want_in}], B [{want_out} r]")
    if d.bias is not None and d.bias.shape[0] != want_out:
        raise Invalid(f"bias for {d.path} has {d.bias.shape[0]} entries; the layer writes {want_out}")
