"""Pretrained SAE suites: pick an SAE from the registry by release and SAE id, resolve its files through
``huggingface_hub`` (the local cache first; downloads only when allowed) and load it through ``sae.io``
(safetensors only, normalisation folded or refused).

Entry points for the REST/CLI skins: ``list_releases`` (picker and search), ``resolve`` (files),
``load_pretrained`` (one SAE), ``release_sae_ids`` / ``load_release`` (a whole release in one call).
"""
from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                    OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)

from ..errors import BadRequest, Invalid, NotFound
from ..model.hook_names import parse_hook_name
from .io import CFG_NAME, WEIGHTS_NAME, SAEFormatError, load_sae
from .model import SparseAutoencoder
from .releases import PretrainedSAEInfo, ReleaseIndex, ReleaseInfo, model_matches, saelens_registry_path

__all__ = ["PretrainedSAE", "PretrainedSAEInfo", "ReleaseIndex", "ReleaseInfo", "ResolvedSAE", "list_releases",
           "load_pretrained", "load_release", "load_resolved", "model_matches", "release_sae_ids", "resolve",
           "sae_files", "saelens_registry_path"]

REQUIRED_FILES = (CFG_NAME, WEIGHTS_NAME)


class ResolvedSAE(NamedTuple):
    folder: Path
    """Snapshot folder holding cfg.json and sae_weights.safetensors (inside the Hugging Face cache)."""
    cfg_overrides: dict[str, Any]
    """The release's config_overrides plus neuronpedia_id, applied over cfg.json on load."""
    info: PretrainedSAEInfo
    """What the registry says about the SAE."""
    revision: str
    """Commit of the repo snapshot the files come from (recorded for provenance)."""


class PretrainedSAE(NamedTuple):
    sae_id: str
    """Id inside the release."""
    sae: SparseAutoencoder
    """The loaded SAE (float32, normalisation folded, ``cfg.extra['pretrained']`` set)."""
    resolved: ResolvedSAE
    """Where its files came from."""


def _index(index: ReleaseIndex | None) -> ReleaseIndex:
    return index if index is not None else ReleaseIndex.load()


def sae_files(info: PretrainedSAEInfo) -> list[str]:
    """Repo-relative paths of the files an SAE needs."""
    return [f"{info.path}/{name}" if info.path else name for name in REQUIRED_FILES]


# ---- listing ----------------------------------------------------------------------------------------------
def _cached_path(repo_id: str, filename: str, cache_dir: str | Path | None) -> Path | None:
    hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    return Path(hit) if isinstance(hit, str) else None


def _with_cache_details(info: PretrainedSAEInfo, cache_dir: str | Path | None) -> PretrainedSAEInfo:
    cfg_name, weights_name = sae_files(info)
    cfg_path = _cached_path(info.repo_id, cfg_name, cache_dir)
    if cfg_path is None:
        return info
    try:
        raw = json.loads(cfg_path.read_text())
        meta = raw.get("metadata") or {}
        hook = meta.get("hook_name") or raw.get("hook_name") or raw.get("hook_point") or info.hook_name
        arch = raw.get("architecture") or ("topk" if raw.get("activation_fn") == "topk" else "standard")
        d_sae = int(raw["d_sae"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return info
    return replace(info, hook_name=hook, d_sae=d_sae, architecture=str(arch),
                   cached=_cached_path(info.repo_id, weights_name, cache_dir) is not None)


def _matches(text: str, terms: Sequence[str]) -> bool:
    low = text.lower()
    return all(t in low for t in terms)


def list_releases(model_id: str | None = None, query: str | None = None, *, index: ReleaseIndex | None = None,
                  cache_dir: str | Path | None = None, supported_only: bool = False) -> list[ReleaseInfo]:
    """Releases for ``model_id`` (any model when None) matching ``query`` (space-separated terms, case
    insensitive, over release, repo, model and format; when some terms only match SAE ids, Neuronpedia ids or
    paths, just those SAEs are kept). Hook names, d_sae and architecture are filled in from cfg.json files already in
    the local Hugging Face cache; ``cached`` says whether an SAE imports offline. Sorted by release name."""
    idx = _index(index)
    terms = (query or "").lower().split()
    out = []
    for name in idx.names():
        rel = idx.get(name)
        if model_id is not None and not model_matches(rel.model, model_id):
            continue
        if supported_only and not rel.supported:
            continue
        saes = rel.saes
        about = f"{rel.release} {rel.repo_id} {rel.model} {rel.format}"
        if terms and not _matches(about, terms):
            saes = tuple(s for s in saes if _matches(f"{about} {s.sae_id} {s.neuronpedia_id or ''} {s.path}", terms))
            if not saes:
                continue
        if rel.supported:
            saes = tuple(_with_cache_details(s, cache_dir) for s in saes)
        out.append(replace(rel, saes=saes))
    return out


def release_sae_ids(release: str, model_id: str | None = None, *, index: ReleaseIndex | None = None) -> list[str]:
    """Every SAE id of ``release`` in registry order (e.g. one per layer). With ``model_id``, refuses a
    release trained on another model."""
    rel = _index(index).get(release)
    _check_model(rel, model_id)
    return [s.sae_id for s in rel.saes]


def _check_model(rel: ReleaseInfo, model_id: str | None) -> None:
    if model_id is not None and not model_matches(rel.model, model_id):
        raise Invalid(f"release {rel.release!r} was trained on {rel.model!r}, but the loaded model is {model_id!r}; "
                      "pick a release for this model (list_releases filters by model)")


def _check_supported(rel: ReleaseInfo) -> None:
    if not rel.supported:
        raise Invalid(f"release {rel.release!r}: {rel.unsupported_reason}")


# ---- resolving files through the Hugging Face cache ---------------------------------------------------
def _cache_dir_text(cache_dir: str | Path | None) -> str:
    return str(cache_dir if cache_dir is not None else hf_constants.HF_HUB_CACHE)


def _fetch_message(what: str, repo_id: str, files: Sequence[str], cache_dir: str | Path | None, why: str) -> str:
    cmd = ["hf", "download", repo_id, *files]
    if cache_dir is not None:
        cmd += ["--cache-dir", str(cache_dir)]
    return (f"{what} is not in the local Hugging Face cache ({_cache_dir_text(cache_dir)}) and {why}. "
            f"Fetch {len(files)} file{'s' if len(files) != 1 else ''} of {repo_id}, then retry: `{shlex.join(cmd)}`")


def _local(repo_id: str, filename: str, cache_dir: str | Path | None, revision: str | None) -> Path | None:
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError):
        return None


def _download(what: str, repo_id: str, filename: str, files: Sequence[str], cache_dir: str | Path | None,
              revision: str | None) -> Path:
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir, revision=revision))
    except GatedRepoError:
        raise BadRequest(f"{repo_id} is gated: accept its terms on huggingface.co and set HF_TOKEN, then retry") from None
    except RepositoryNotFoundError:
        raise NotFound(f"Hugging Face repo {repo_id} does not exist or is private (set HF_TOKEN if it is yours)") from None
    except RevisionNotFoundError:
        raise NotFound(f"{repo_id} has no revision {revision!r}") from None
    except EntryNotFoundError:
        raise NotFound(f"{repo_id} has no file {filename}; the registry entry for {what} is out of date") from None
    except OfflineModeIsEnabled:
        raise NotFound(_fetch_message(what, repo_id, files, cache_dir, "HF_HUB_OFFLINE is set")) from None
    except (HfHubHTTPError, OSError) as e:
        raise NotFound(_fetch_message(what, repo_id, files, cache_dir, f"the Hub could not be reached ({e})")) from None


def _snapshot(path: Path, filename: str) -> Path:
    """The snapshot folder ``.../snapshots/<commit>`` a cached file lives in."""
    for _ in filename.split("/"):
        path = path.parent
    return path


class _Located(NamedTuple):
    paths: dict[str, Path]
    missing: list[str]


def _locate(info: PretrainedSAEInfo, cache_dir: str | Path | None) -> _Located:
    paths, missing = {}, []
    for f in sae_files(info):
        hit = _local(info.repo_id, f, cache_dir, None)
        if hit is None:
            missing.append(f)
        else:
            paths[f] = hit
    return _Located(paths, missing)


def _downloads_allowed(local_files_only: bool) -> bool:
    return not local_files_only and not hf_constants.is_offline_mode()


def _why_offline(local_files_only: bool) -> str:
    return "downloads are off" if local_files_only else "downloads are off (HF_HUB_OFFLINE is set)"


def _finish(rel: ReleaseInfo, info: PretrainedSAEInfo, found: _Located, cache_dir: str | Path | None) -> ResolvedSAE:
    what = f"SAE {rel.release}/{info.sae_id}"
    files = sae_files(info)
    paths = dict(found.paths)
    if found.missing:  # download what is missing, pinned to the commit of what is already cached
        pin = _snapshot(next(iter(paths.values())), next(iter(paths))).name if paths else None
        for f in found.missing:
            paths[f] = _download(what, info.repo_id, f, files, cache_dir, pin)
    snaps = {_snapshot(p, f) for f, p in paths.items()}
    if len(snaps) != 1:
        raise NotFound(_fetch_message(what, info.repo_id, files, cache_dir,
                                      "its cached files come from different commits"))
    folder = paths[files[0]].parent
    overrides = dict(rel.config_overrides)
    if info.neuronpedia_id:
        overrides["neuronpedia_id"] = info.neuronpedia_id
    return ResolvedSAE(folder, overrides, info, snaps.pop().name)


def resolve(release: str, sae_id: str, *, cache_dir: str | Path | None = None, local_files_only: bool = True,
            index: ReleaseIndex | None = None) -> ResolvedSAE:
    """Find an SAE's files: the local Hugging Face cache first; with ``local_files_only=False`` (and
    HF_HUB_OFFLINE unset) the missing files are downloaded. Unknown release/SAE -> NotFound; a format we do
    not import -> Invalid ('not supported yet: ...'); not cached while offline -> NotFound naming the repo, the
    exact files and a command that fetches them."""
    rel = _index(index).get(release)
    info = rel.sae(sae_id)
    _check_supported(rel)
    found = _locate(info, cache_dir)
    if found.missing and not _downloads_allowed(local_files_only):
        raise NotFound(_fetch_message(f"SAE {release}/{sae_id}", info.repo_id, found.missing, cache_dir,
                                      _why_offline(local_files_only)))
    return _finish(rel, info, found, cache_dir)


# ---- loading ----------------------------------------------------------------------------------------------
def load_resolved(resolved: ResolvedSAE, *, device: str | torch.device = "cpu",
                  norm_scaling_factor: float | None = None) -> SparseAutoencoder:
    """Load resolved files; ``norm_scaling_factor`` overrides the registry's (for 'expected_average_only_in')."""
    info = resolved.info
    factor = norm_scaling_factor if norm_scaling_factor is not None else info.norm_scaling_factor
    where = f"SAE {info.release}/{info.sae_id} ({info.repo_id}/{info.path})"
    try:
        sae = load_sae(resolved.folder, device, cfg_overrides=resolved.cfg_overrides, norm_scaling_factor=factor)
    except SAEFormatError as e:
        raise Invalid(f"{where}: {e}") from None
    cfg = sae.cfg
    try:
        parse_hook_name(cfg.hook_name)
    except ValueError as e:
        raise Invalid(f"{where}: not supported yet: it reads hook {cfg.hook_name!r} ({e})") from None
    if not cfg.model_id:
        cfg.model_id = info.model  # the registry's name for it (may be a TransformerLens alias)
    cfg.extra["pretrained"] = {
        "release": info.release, "sae_id": info.sae_id, "repo_id": info.repo_id, "path": info.path,
        "revision": resolved.revision, "neuronpedia_id": info.neuronpedia_id,
    }
    return sae


def load_pretrained(release: str, sae_id: str, *, device: str | torch.device = "cpu",
                    cache_dir: str | Path | None = None, local_files_only: bool = True,
                    index: ReleaseIndex | None = None, norm_scaling_factor: float | None = None) -> SparseAutoencoder:
    """One SAE from the registry, loaded like ``sae_lens.SAE.from_pretrained(release, sae_id)`` (float32)."""
    resolved = resolve(release, sae_id, cache_dir=cache_dir, local_files_only=local_files_only, index=index)
    return load_resolved(resolved, device=device, norm_scaling_factor=norm_scaling_factor)


def load_release(release: str, *, model_id: str | None = None, sae_ids: Iterable[str] | None = None,
                 device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                 local_files_only: bool = True, index: ReleaseIndex | None = None) -> list[PretrainedSAE]:
    """Every SAE of a release (or the given ``sae_ids``), in registry order, all or nothing: files are
    resolved for all of them first, so an offline miss names every missing file at once."""
    rel = _index(index).get(release)
    _check_model(rel, model_id)
    _check_supported(rel)
    wanted = list(dict.fromkeys(sae_ids)) if sae_ids is not None else [s.sae_id for s in rel.saes]
    infos = [rel.sae(i) for i in wanted]
    if not infos:
        raise Invalid(f"release {release!r}: no SAE ids given")
    located = [_locate(info, cache_dir) for info in infos]
    missing = [f for loc in located for f in loc.missing]
    if missing and not _downloads_allowed(local_files_only):
        raise NotFound(_fetch_message(f"release {release} ({len(infos)} SAEs)", rel.repo_id, missing, cache_dir,
                                      _why_offline(local_files_only)))
    resolved = [_finish(rel, info, loc, cache_dir) for info, loc in zip(infos, located)]
    return [PretrainedSAE(r.info.sae_id, load_resolved(r, device=device), r) for r in resolved]
