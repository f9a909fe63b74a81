"""PatchManager (``state.patches``): patches stored in the ``patches`` table and applied to the live model.

Patches are re-applied whenever a model is loaded (``state.on_model_change``) if they were made for that
model. Strength and enabled changes act in place on the wrappers; ``using(ids)`` runs a block with exactly
those patches on (everything else off) under the model lock — ``using([])`` is the original model.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from safetensors.torch import load_file, save_file

from ..errors import Conflict, Invalid, NotFound
from ..store.artifacts import atomic_dir, safe_join
from ..store.db import new_id, now
from . import inject
from .config import DEFAULT_STRENGTH, PatchConfig
from .lora import ModuleDelta, feature_deltas, layer_of_path, scaling_for

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


class PatchManager:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.db = state.db
        self.root = Path(state.settings.artifacts_dir) / "patches"
        self._lock = threading.RLock()
        self._applied: dict[str, list[str]] = {}  # patch id -> wrapped module paths
        self._errors: dict[str, str] = {}  # patch id -> why it is not applied
        state.on_model_change(self._on_model_change)

    # store ---------------------------------------------------------------------------------
    def _row(self, cfg: PatchConfig) -> dict[str, Any]:
        return {"id": cfg.id, "name": cfg.name, "sae_id": cfg.sae_id, "mode": cfg.mode,
                "features_json": cfg.features, "strength": cfg.strength, "enabled": int(cfg.enabled),
                "config_json": cfg.to_dict(), "created_at": cfg.created_at, "updated_at": cfg.updated_at}

    def _save(self, cfg: PatchConfig, *, new: bool = False) -> None:
        cfg.updated_at = now()
        if new:
            self.db.insert("patches", self._row(cfg))
        else:
            row = self._row(cfg)
            row.pop("id")
            self.db.update("patches", {"id": cfg.id}, row)

    def list(self) -> list[PatchConfig]:
        rows = self.db.query("SELECT config_json FROM patches ORDER BY created_at")
        return [PatchConfig.from_dict(r["config_json"]) for r in rows]

    def get(self, patch_id: str) -> PatchConfig:
        row = self.db.get("patches", id=patch_id)
        if row is None:
            raise NotFound(f"patch {patch_id!r} not found; GET /api/patches lists them")
        return PatchConfig.from_dict(row["config_json"])

    def status(self, patch_id: str) -> tuple[bool, str | None]:
        """(applied to the live model, why not)."""
        return patch_id in self._applied, self._errors.get(patch_id)

    # create / update / delete ----------------------------------------------------------------
    def create(self, *, sae_id: str, features: list[int], mode: str, strength: float | None = None,
               name: str | None = None, enabled: bool = True) -> PatchConfig:
        lm = self.state.require_model()
        entry = self.state.saes.get(sae_id)
        scfg = entry.sae.cfg
        if scfg.model_id and scfg.model_id != lm.model_id:
            raise Conflict(f"SAE {sae_id} was trained on {scfg.model_id!r} but {lm.model_id!r} is loaded; "
                           "load that model or pick an SAE of this one")
        if scfg.d_in != lm.d_model:
            raise Invalid(f"SAE {sae_id} reads width {scfg.d_in} but the model's d_model is {lm.d_model}")
        if features and max(features) >= scfg.d_sae:
            raise Invalid(f"feature {max(features)} is out of range: SAE {sae_id} has features 0..{scfg.d_sae - 1}")
        try:
            cfg = PatchConfig(
                id=new_id("patch"), name=name or f"{mode} {','.join(map(str, features))} @ {scfg.hook_name}",
                mode=mode, features=list(features), sae_id=sae_id,
                strength=strength if strength is not None else DEFAULT_STRENGTH.get(mode, 1.0),
                enabled=enabled, model_id=lm.model_id, hook_name=scfg.hook_name)
        except ValueError as e:
            raise Invalid(str(e)) from None
        with self.state.model_lock:
            self._apply(cfg)  # raises before anything is stored if the edit cannot be built
            self._save(cfg, new=True)
        return cfg

    def create_adapter(self, deltas: list[ModuleDelta], *, name: str, strength: float = 1.0,
                       extra: dict | None = None) -> PatchConfig:
        """A patch from raw deltas (an imported LoRA adapter); validated against the live model."""
        lm = self.state.require_model()
        cfg = PatchConfig(id=new_id("patch"), name=name, mode="adapter", strength=strength,
                          model_id=lm.model_id, rank=max(d.rank for d in deltas), extra=extra or {})
        folder = safe_join(self.root, cfg.id)
        with atomic_dir(folder) as tmp:
            save_file(deltas_to_tensors(deltas), str(tmp / DELTAS_FILE))
        try:
            with self.state.model_lock:
                self._apply(cfg)
                self._save(cfg, new=True)
        except Exception:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cfg

    def update(self, patch_id: str, *, strength: float | None = None, enabled: bool | None = None,
               name: str | None = None, features: list[int] | None = None) -> PatchConfig:
        with self.state.model_lock:
            cfg = self.get(patch_id)
            if name is not None:
                cfg.name = name
            if features is not None and list(features) != cfg.features:
                if cfg.mode == "adapter":
                    raise Invalid("an imported adapter has no features to change")
                try:
                    new = PatchConfig.from_dict({**cfg.to_dict(), "features": list(features)})
                except ValueError as e:
                    raise Invalid(str(e)) from None
                self._unapply(patch_id)
                try:
                    self._apply(new)
                except Exception:
                    self._apply(cfg)
                    raise
                cfg = new
            if strength is not None:
                cfg = PatchConfig.from_dict({**cfg.to_dict(), "strength": strength})
                self._set(patch_id, cfg)
            if enabled is not None:
                cfg.enabled = bool(enabled)
                for path in self._applied.get(patch_id, []):
                    inject.set_entry(self._model(), path, patch_id, enabled=cfg.enabled)
            self._save(cfg)
            return cfg

    def set_strength(self, patch_id: str, strength: float) -> PatchConfig:
        """The live slider path: change the scaling in place and persist."""
        return self.update(patch_id, strength=strength)

    def delete(self, patch_id: str) -> None:
        with self.state.model_lock:
            self.get(patch_id)
            self._unapply(patch_id)
            self.db.delete("patches", id=patch_id)
            self._errors.pop(patch_id, None)
        import shutil

        shutil.rmtree(safe_join(self.root, patch_id), ignore_errors=True)

    # application ---------------------------------------------------------------------------------
    def _model(self):  # noqa: ANN202
        return self.state.require_model().model

    def deltas_for(self, cfg: PatchConfig) -> list[ModuleDelta]:
        """Unit-strength deltas of a weight-delta patch on the live model."""
        if cfg.mode == "adapter":
            return tensors_to_deltas(load_file(str(safe_join(self.root, cfg.id, DELTAS_FILE))))
        sae = self.state.saes.get(cfg.sae_id).sae
        with self.state.model_lock:
            return feature_deltas(self._model(), sae, cfg.features, cfg.mode)

    def _apply(self, cfg: PatchConfig) -> None:
        lm = self.state.require_model()
        model = lm.model
        paths: list[str] = []
        try:
            if cfg.mode == "clamp":
                sae = self.state.saes.get(cfg.sae_id).sae
                from ..model.hook_map import resolve

                hp = resolve(model, sae.cfg.hook_name)
                if hp.io != "output" or not sae.cfg.hook_name.endswith("resid_post"):
                    raise Invalid("clamp needs an SAE on a resid_post hook")
                w = inject.wrap(model, hp.path, inject.ClampBlock)
                paths.append(hp.path)
                w.add(cfg.id, sae, cfg.features, cfg.strength, cfg.enabled, lm.device)
                cfg.rank = 0
            else:
                deltas = self.deltas_for(cfg)
                scaling = scaling_for(cfg.mode, cfg.strength)
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
        cfg.target_modules = paths
        self._applied[cfg.id] = paths
        self._errors.pop(cfg.id, None)

    def _unapply(self, patch_id: str) -> None:
        paths = self._applied.pop(patch_id, [])
        if paths and self.state.lm is not None:
            for p in paths:
                inject.remove_entry(self.state.lm.model, p, patch_id)

    def _set(self, patch_id: str, cfg: PatchConfig) -> None:
        model = self._model()
        for path in self._applied.get(patch_id, []):
            if cfg.mode == "clamp":
                inject.set_entry(model, path, patch_id, value=cfg.strength)
            else:
                inject.set_entry(model, path, patch_id, scaling=scaling_for(cfg.mode, cfg.strength))

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

    @contextmanager
    def using(self, patch_ids: list[str]) -> Iterator[None]:
        """Exactly ``patch_ids`` on, all others off, for the duration of the block (holds the model lock)."""
        want = set(patch_ids)
        with self.state.model_lock:
            model = self._model()
            enabled = {c.id: c.enabled for c in self.list()}
            for pid, paths in self._applied.items():
                for p in paths:
                    inject.set_entry(model, p, pid, enabled=pid in want)
            try:
                yield
            finally:
                for pid, paths in self._applied.items():
                    for p in paths:
                        inject.set_entry(model, p, pid, enabled=enabled.get(pid, False))

    def suspended(self) -> Any:
        """The original model for the duration of the block (for analyses that must not see patches)."""
        return self.using([])

    def shutdown(self) -> None:
        pass


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
