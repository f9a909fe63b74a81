"""Fixtures for pretrained-SAE tests: SAEs built and saved by the real ``sae_lens``, a Hugging Face hub cache
laid out as ``huggingface_hub`` writes it (blobs + snapshot symlinks + refs/main), offline mode on, and a
registry file (SAELens's YAML layout) naming the test releases."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

D_IN = 64  # the tiny models' d_model


class HubCache:
    """A Hugging Face hub cache under ``root`` (what ``HF_HUB_CACHE`` points at)."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root, self.work = root, work
        self.root.mkdir(parents=True, exist_ok=True)

    def repo_dir(self, repo_id: str) -> Path:
        return self.root / ("models--" + repo_id.replace("/", "--"))

    def publish(self, repo_id: str, folders: dict[str, Path], only: tuple[str, ...] | None = None) -> str:
        """Cache ``{subfolder in repo: local folder}`` as one commit of ``repo_id`` (refs/main -> it); with
        ``only``, just the files whose names are listed (a partial download). Returns the commit hash."""
        repo = self.repo_dir(repo_id)
        commit = hashlib.sha1(repr(sorted((k, str(v)) for k, v in folders.items())).encode() + repo_id.encode()).hexdigest()
        for sub, src in folders.items():
            for f in sorted(Path(src).iterdir()):
                if only is not None and f.name not in only:
                    continue
                data = f.read_bytes()
                blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
                blob.parent.mkdir(parents=True, exist_ok=True)
                blob.write_bytes(data)
                link = repo / "snapshots" / commit / sub / f.name
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.path.relpath(blob, link.parent))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        return commit

    def registry(self, releases: dict[str, Any], name: str = "registry.yaml") -> Path:
        path = self.work / name
        path.write_text(yaml.safe_dump(releases, sort_keys=False))
        return path


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubCache:
    """An empty hub cache; HF_HOME/HF_HUB_CACHE point at it and offline mode is on (env and the
    already-imported huggingface_hub constants)."""
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    cache = home / "hub"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return HubCache(cache, tmp_path)


def _metadata(cfg, hook: str, model: str) -> None:
    cfg.metadata.hook_name = hook
    cfg.metadata.model_name = model


@torch.no_grad()
def _randomise(sae, decoder_norms: bool = True) -> None:
    """Non-trivial weights: decoder rows of uneven norm, biases, encoder not the decoder's transpose."""
    d_sae, d_in = sae.W_dec.shape
    sae.W_enc.copy_(torch.randn(d_in, d_sae) / d_in ** 0.5)
    w = torch.randn(d_sae, d_in) / d_in ** 0.5
    if decoder_norms:
        w *= torch.empty(d_sae, 1).uniform_(0.3, 3.0)
    sae.W_dec.copy_(w)
    sae.b_dec.copy_(torch.randn(d_in) * 0.3)
    if getattr(sae, "b_enc", None) is not None:
        sae.b_enc.copy_(torch.randn(d_sae) * 0.2)
    if hasattr(sae, "threshold"):
        # per-latent thresholds, a few negative (SAELens's ReLU still zeroes negative pre-activations)
        sae.threshold.copy_(torch.empty(d_sae).uniform_(-0.3, 1.5))


def saelens_sae(arch: str, folder: Path, *, hook: str = "blocks.1.hook_resid_post", model: str = "tiny-llama",
                d_in: int = D_IN, d_sae: int = 128, **cfg_kwargs: Any):
    """Build an SAE with sae_lens, give it non-trivial weights and save it with sae_lens into ``folder``."""
    import sae_lens

    if arch == "batchtopk":  # trained as BatchTopK, saved for inference as JumpReLU (SAELens's own path)
        cfg = sae_lens.BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=cfg_kwargs.pop("k", 8), **cfg_kwargs)
        _metadata(cfg, hook, model)
        sae = sae_lens.BatchTopKTrainingSAE(cfg)
        _randomise(sae)
        sae.topk_threshold = torch.tensor(0.4, dtype=torch.double)
        sae.save_inference_model(str(folder))
        return sae
    classes = {"jumprelu": (sae_lens.JumpReLUSAE, sae_lens.JumpReLUSAEConfig),
               "topk": (sae_lens.TopKSAE, sae_lens.TopKSAEConfig),
               "standard": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig),
               "gated": (sae_lens.GatedSAE, sae_lens.GatedSAEConfig)}
    sae_cls, cfg_cls = classes[arch]
    cfg = cfg_cls(d_in=d_in, d_sae=d_sae, **cfg_kwargs)
    _metadata(cfg, hook, model)
    sae = sae_cls(cfg)
    _randomise(sae)
    sae.save_model(str(folder))
    return sae


def register_in_saelens(monkeypatch: pytest.MonkeyPatch, release: str, entry: dict[str, Any]) -> None:
    """Add a test release to sae_lens's own (in-memory) registry so ``SAE.from_pretrained(release, id)``
    takes its real registry path: repo/folder mapping, config overrides, norm scaling factors."""
    from sae_lens.loading.pretrained_saes_directory import PretrainedSAELookup, get_pretrained_saes_directory

    saes = entry["saes"]
    monkeypatch.setitem(get_pretrained_saes_directory(), release, PretrainedSAELookup(
        release=release, repo_id=entry["repo_id"], model=entry["model"], conversion_func=entry.get("conversion_func"),
        saes_map={s["id"]: s["path"] for s in saes}, expected_var_explained={}, expected_l0={},
        neuronpedia_id={s["id"]: s.get("neuronpedia") for s in saes},
        norm_scaling_factor={s["id"]: s["norm_scaling_factor"] for s in saes if "norm_scaling_factor" in s},
        config_overrides=entry.get("config_overrides")))


@pytest.fixture
def make_sae():
    """``make_sae(arch, folder, hook=..., model=..., d_in=..., d_sae=..., **cfg)``: saved by sae_lens."""
    return saelens_sae


@pytest.fixture
def in_saelens_registry(monkeypatch: pytest.MonkeyPatch):
    """``in_saelens_registry(release, entry)``: the release is known to sae_lens for this test."""
    return lambda release, entry: register_in_saelens(monkeypatch, release, entry)
