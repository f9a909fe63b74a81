"""The registry of pretrained SAE releases: SAELens's ``pretrained_saes.yaml`` (read from the installed
``sae_lens`` package as a data file, without importing sae_lens, which pulls in TransformerLens) plus any
extra registry files in the same YAML layout (a later file overrides a release of the same name)::

    my-release:
      repo_id: owner/name          # Hugging Face model repo holding the SAEs
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      conversion_func: null        # null = SAELens folders (cfg.json + sae_weights.safetensors)
      config_overrides: {...}      # optional, applied over every cfg.json
      saes:
        - {id: blocks.6.hook_resid_post, path: layer_6, neuronpedia: ..., l0: ..., norm_scaling_factor: ...}
"""
from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml

from ..errors import Invalid, NotFound
from ..model.hook_names import parse_hook_name

SAELENS_REGISTRY_FILE = "pretrained_saes.yaml"
SAELENS_FORMAT = "sae_lens"
"""Format name of SAELens folders (cfg.json + sae_weights.safetensors): the one the workbench imports."""
FORMAT_NOTES = {
    "gemma_2": "Gemma Scope (params.npz per SAE, config inferred from the folder name)",
    "gemma_3": "Gemma Scope 2 (params.safetensors + config.json with keys w_enc/w_dec/threshold)",
    "llama_scope": "Llama Scope (checkpoints/final.safetensors + hyperparams.json, scalar JumpReLU threshold)",
    "llama_scope_r1_distill": "Llama Scope R1-distill (checkpoints + hyperparams.json)",
    "dictionary_learning_1": "dictionary_learning (ae.pt: a torch pickle, never unpickled here)",
    "deepseek_r1": "DeepSeek-R1 SAEs (a torch pickle, never unpickled here)",
    "goodfire": "Goodfire SAEs (a torch pickle, never unpickled here)",
    "connor_rob_hook_z": "attention hook_z SAEs (a torch pickle, never unpickled here)",
    "qwen_scope": "Qwen Scope (TopK SAEs in their own layout)",
    "sparsify": "EleutherAI sparsify (sae.safetensors + cfg.json in sparsify's layout)",
    "gemma_2_transcoder": "Gemma Scope transcoders",
    "mwhanna_transcoder": "transcoders (mwhanna's layout)",
    "mntss_clt_layer_transcoder": "cross-layer transcoders",
    "temporal": "temporal SAEs",
}
# registry model names (TransformerLens aliases) whose Hugging Face repo name differs
_MODEL_ALIASES = {"gpt2-small": "gpt2", "mistral-7b": "mistral-7b-v0.1"}


@dataclass(frozen=True)
class PretrainedSAEInfo:
    release: str
    """Release it belongs to."""
    sae_id: str
    """Id inside the release (SAELens's ``sae_id``)."""
    repo_id: str
    """Hugging Face repo holding its files."""
    path: str
    """Folder of its files inside the repo."""
    model: str = ""
    """Model it was trained on, as the registry names it."""
    neuronpedia_id: str | None = None
    """Neuronpedia id (``model/source``), when the registry lists one."""
    l0: float | None = None
    """Mean active latents per token, as the registry lists it."""
    variance_explained: float | None = None
    """Variance explained, as the registry lists it."""
    norm_scaling_factor: float | None = None
    """Input scale for 'expected_average_only_in' SAEs (folded into the weights on import)."""
    hook_name: str | None = None
    """Hook it reads, when known (cached cfg.json, config overrides, or an id that is a hook name)."""
    d_sae: int | None = None
    """Number of latents, when its cfg.json is cached."""
    architecture: str | None = None
    """Architecture, when its cfg.json is cached."""
    cached: bool = False
    """Both files are in the local Hugging Face cache (it imports offline)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReleaseInfo:
    release: str
    """Release name (SAELens's ``release``)."""
    repo_id: str
    """Hugging Face repo holding its SAEs."""
    model: str
    """Model the SAEs were trained on, as the registry names it."""
    format: str
    """File format (SAELens's conversion_func; 'sae_lens' for cfg.json + sae_weights.safetensors)."""
    saes: tuple[PretrainedSAEInfo, ...]
    """Its SAEs, in registry order."""
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
    """Applied over every cfg.json of the release (as SAELens does)."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Dashboards, publication, model card."""
    source: str = ""
    """Registry file it came from."""

    def __post_init__(self) -> None:
        if not self.release or not self.repo_id or "/" not in self.repo_id:
            raise ValueError(f"release {self.release!r}: repo_id must be 'owner/name', got {self.repo_id!r}")

    @property
    def supported(self) -> bool:
        return self.format == SAELENS_FORMAT

    @property
    def unsupported_reason(self) -> str | None:
        if self.supported:
            return None
        note = FORMAT_NOTES.get(self.format)
        return f"not supported yet: {self.format}" + (f" — {note}" if note else "") + \
            "; the workbench imports SAELens folders (cfg.json + sae_weights.safetensors)"

    def sae(self, sae_id: str) -> PretrainedSAEInfo:
        for s in self.saes:
            if s.sae_id == sae_id:
                return s
        ids = [s.sae_id for s in self.saes]
        near = get_close_matches(sae_id, ids, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; it has {', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}"
        raise NotFound(f"release {self.release!r} has no SAE {sae_id!r}{hint}")

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.release, "repo_id": self.repo_id, "model": self.model, "format": self.format,
                "supported": self.supported, "unsupported_reason": self.unsupported_reason,
                "config_overrides": dict(self.config_overrides), "links": dict(self.links),
                "source": self.source, "saes": [s.to_dict() for s in self.saes]}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _hook_from_id(sae_id: str, overrides: Mapping[str, Any]) -> str | None:
    if isinstance(overrides.get("hook_name"), str):
        return overrides["hook_name"]
    try:
        parse_hook_name(sae_id)
    except ValueError:
        return None
    return sae_id


def _parse_release(name: str, value: Any, source: str) -> ReleaseInfo:
    if not isinstance(value, Mapping) or not isinstance(value.get("saes"), list):
        raise ValueError("needs repo_id, model and a list of saes")
    overrides = value.get("config_overrides") or {}
    if not isinstance(overrides, Mapping):
        raise ValueError("config_overrides must be a mapping")
    repo_id = str(value.get("repo_id") or "")
    saes = []
    for s in value["saes"]:
        if not isinstance(s, Mapping) or "id" not in s or "path" not in s:
            raise ValueError("every SAE needs an id and a path")
        sae_id = str(s["id"])
        saes.append(PretrainedSAEInfo(
            release=name, sae_id=sae_id, repo_id=repo_id, path=str(s["path"]).strip("/"), model=str(value.get("model") or ""),
            neuronpedia_id=s.get("neuronpedia"), l0=_opt_float(s.get("l0")),
            variance_explained=_opt_float(s.get("variance_explained")),
            norm_scaling_factor=_opt_float(s.get("norm_scaling_factor")), hook_name=_hook_from_id(sae_id, overrides)))
    return ReleaseInfo(release=name, repo_id=repo_id, model=str(value.get("model") or ""),
                       format=str(value.get("conversion_func") or SAELENS_FORMAT), saes=tuple(saes),
                       config_overrides=dict(overrides), links=dict(value.get("links") or {}), source=source)


@functools.lru_cache(maxsize=16)
def _parse_file(path: str, mtime_ns: int, size: int) -> dict[str, ReleaseInfo]:
    """Parsed once per (path, mtime, size): SAELens's 40k-line YAML takes seconds."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses SAELens's 40k lines ~5x faster
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=loader)  # a safe loader: plain data only
    except (OSError, yaml.YAMLError) as e:
        raise Invalid(f"SAE registry file {path} could not be read: {e}") from None
    if not isinstance(data, Mapping):
        raise Invalid(f"SAE registry file {path} must map release names to releases")
    out: dict[str, ReleaseInfo] = {}
    for name, value in data.items():
        try:
            out[str(name)] = _parse_release(str(name), value, path)
        except (TypeError, ValueError) as e:
            raise Invalid(f"SAE registry file {path}, release {name!r}: {e}") from None
    return out


def _read(path: Path) -> dict[str, ReleaseInfo]:
    try:
        st = path.stat()
    except OSError:
        raise NotFound(f"SAE registry file {path} does not exist") from None
    return _parse_file(str(path), st.st_mtime_ns, st.st_size)


def saelens_registry_path() -> Path | None:
    """The registry YAML shipped inside the installed sae_lens package (found without importing it)."""
    try:
        spec = importlib.util.find_spec("sae_lens")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(loc) / SAELENS_REGISTRY_FILE
        if candidate.is_file():
            return candidate
    return None


class ReleaseIndex:
    """Releases by name, from SAELens's registry and/or extra registry files."""

    def __init__(self, releases: Mapping[str, ReleaseInfo], sources: tuple[str, ...]) -> None:
        self.releases = dict(releases)
        self.sources = sources

    @classmethod
    def load(cls, extra_files: Iterable[str | Path] = (), *, include_saelens: bool = True) -> ReleaseIndex:
        """SAELens's registry (when installed and ``include_saelens``), then each extra file on top."""
        releases: dict[str, ReleaseInfo] = {}
        sources: list[str] = []
        saelens = saelens_registry_path() if include_saelens else None
        for path in ([saelens] if saelens else []) + [Path(p) for p in extra_files]:
            releases.update(_read(path))
            sources.append(str(path))
        if not sources:
            raise NotFound("no registry of pretrained SAEs is available: install sae-lens (pip install sae-lens) "
                           "for SAELens's registry, or give a registry file of your own releases (same YAML layout)")
        return cls(releases, tuple(sources))

    def __len__(self) -> int:
        return len(self.releases)

    def __contains__(self, release: object) -> bool:
        return release in self.releases

    def names(self) -> list[str]:
        return sorted(self.releases)

    def get(self, release: str) -> ReleaseInfo:
        info = self.releases.get(release)
        if info is None:
            near = get_close_matches(release, list(self.releases), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise NotFound(f"release {release!r} is not in the SAE registry ({', '.join(self.sources)}){hint}")
        return info


def model_key(name: str) -> str:
    """Comparable model name: the repo name without owner, lower case, TransformerLens aliases mapped."""
    key = name.strip().rstrip("/").replace("\\", "/").rsplit("/", 1)[-1].lower()
    return _MODEL_ALIASES.get(key, key)


def model_matches(registry_model: str, model_id: str) -> bool:
    """Whether a registry's model name denotes ``model_id`` (a hub id or a folder named like the repo)."""
    return bool(registry_model) and model_key(registry_model) == model_key(model_id)
