"""The device and dtype policy, and where a (possibly dispatched) model's pieces live.

Policy, stated once:

* **Device.** Every SAE, statistic and derived tensor lives on the loaded model's *main device*
  (``LoadedModel.device``): the device its inputs go to (the embedding's execution device; for a model
  dispatched by accelerate across GPUs and CPU, the first GPU). An activation read inside a dispatched
  model is on its block's device and is moved to the main device once, per batch, where it is consumed;
  a replacement returned into the model is moved back to the activation's device (``model/hooks.py``).
  Weight deltas live on the device their module *executes* on (``execution_device``), so a patch on a
  block placed on ``cuda:1`` or offloaded to CPU adds its delta where the block computes.
* **Dtype.** Forwards run in the model's dtype. SAEs are float32 (``STATS_DTYPE``) and so is everything
  computed from activations: encoder inputs are cast once per batch, statistics, logit effects
  (``W_dec·W_U``), neighbours, contrast samples and provenance attributions are float32; weight deltas
  (PEFT LoRA A/B/bias) are built and applied in float32 and their sum with the module's output is rounded
  to the model's dtype once — what PEFT does with float32 adapters on a bf16 base.
* **Host syncs.** Hot loops keep tensors on the device; ``.tolist()`` / ``float()`` happen once, when
  results are serialised.

Accelerate's dispatch (``device_map``) puts an ``AlignDevicesHook`` on modules: it moves inputs to the
module's execution device and, for offloaded modules (CPU or disk when a GPU executes them), loads the
weights from a ``weights_map`` for the forward and leaves ``meta`` tensors in between. ``module_tensor``
reads such a weight where it really is.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

import torch
from torch import Tensor, nn

STATS_DTYPE = torch.float32
"""SAE weights and every statistic computed from activations."""


def _hook(module: nn.Module) -> Any:
    return getattr(module, "_hf_hook", None)


def _hook_attr(hook: Any, name: str) -> Any:
    """An attribute of an accelerate hook, looking inside a SequentialHook."""
    if hook is None:
        return None
    if hasattr(hook, name):
        return getattr(hook, name)
    for h in getattr(hook, "hooks", ()):
        if hasattr(h, name):
            return getattr(h, name)
    return None


def _hook_device(module: nn.Module) -> torch.device | None:
    dev = _hook_attr(_hook(module), "execution_device")
    if dev is None:
        return None
    return torch.device("cuda", dev) if isinstance(dev, int) else torch.device(dev)


def execution_device(module: nn.Module) -> torch.device:
    """The device ``module`` computes on: its accelerate hook's execution device, else the device of its
    first real (non-meta) parameter or buffer, else CPU."""
    dev = _hook_device(module)
    if dev is not None:
        return dev
    for t in (*module.parameters(), *module.buffers()):
        if t.device.type != "meta":
            return t.device
    return torch.device("cpu")


def module_tensor(module: nn.Module, name: str = "weight") -> Tensor:
    """``module.<name>`` (detached) where it really lives: an offloaded module holds a ``meta`` placeholder
    between forwards and the value in its accelerate hook's ``weights_map`` (CPU memory or a disk map)."""
    t = getattr(module, name)
    if t.device.type != "meta":
        return t.detach()
    wmap = _hook_attr(_hook(module), "weights_map")
    if wmap is not None:
        try:
            return wmap[name].detach()
        except KeyError:
            pass
    raise RuntimeError(f"{type(module).__name__}.{name} is on the meta device and no offload map holds it")


def is_dispatched(model: nn.Module) -> bool:
    """Whether accelerate placed the model with a device map (several devices, or offloaded weights)."""
    return bool(getattr(model, "hf_device_map", None)) and _hook(model) is not None


def to_stats(x: Tensor, device: torch.device | None = None) -> Tensor:
    """An activation as float32 on ``device`` (the SAE's) — the one cast between a forward and SAE math."""
    return x.to(device=device if device is not None else x.device, dtype=STATS_DTYPE)


_TF32_LOCK = threading.Lock()
_TF32_USERS = [0, False]  # blocks inside tf32_matmuls, the flag's value before the first one


@contextmanager
def tf32_matmuls(enabled: bool = True) -> Iterator[None]:
    """Let CUDA float32 matmuls use TF32 tensor cores inside the block (10-bit mantissa, float32 range and
    accumulation: relative error ~5e-4 per product; activations of a bf16 or fp16 model are exact in TF32).
    Used for the SAE encoder matmul of feature analysis, whose statistics stay float32; no effect on CPU.
    The switch is process-wide while any block holds it (reference counted, restored after the last)."""
    if not enabled or not torch.cuda.is_available():
        yield
        return
    with _TF32_LOCK:
        if _TF32_USERS[0] == 0:
            _TF32_USERS[1] = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
        _TF32_USERS[0] += 1
    try:
        yield
    finally:
        with _TF32_LOCK:
            _TF32_USERS[0] -= 1
            if _TF32_USERS[0] == 0:
                torch.backends.cuda.matmul.allow_tf32 = bool(_TF32_USERS[1])


# where things are -------------------------------------------------------------------------------
def _map_device(value: Any) -> str:
    if isinstance(value, int):
        return f"cuda:{value}"
    if isinstance(value, torch.device):
        return str(value)
    return str(value)


def stored_device(model: nn.Module, path: str) -> str:
    """Where the weights of the module at ``path`` are stored: a device ('cuda:0', 'cpu') or 'disk'."""
    dmap = getattr(model, "hf_device_map", None) or {}
    best, best_len = None, -1
    for key, value in dmap.items():
        if (key == "" or path == key or path.startswith(key + ".")) and len(key) > best_len:
            best, best_len = value, len(key)
    if best is not None:
        return _map_device(best)
    module = model.get_submodule(path)
    for t in module.parameters():
        return str(t.device)
    return str(execution_device(module))


class LayerPlacement(NamedTuple):
    layer: int
    stored_on: str
    """Where its weights are kept: 'cuda:0', 'cpu' or 'disk'."""
    runs_on: str
    """Where it computes (an offloaded block is loaded onto this device for its forward)."""


def layer_placement(model: nn.Module, layers_path: str) -> list[LayerPlacement]:
    layers = model.get_submodule(layers_path)
    out = []
    for i, block in enumerate(layers):  # type: ignore[arg-type]
        path = f"{layers_path}.{i}"
        stored = stored_device(model, path)
        # offloaded blocks may carry their hooks on the leaves only: ask the first module that has one
        runs = next((d for d in map(_hook_device, block.modules()) if d is not None), None)
        out.append(LayerPlacement(i, stored, str(runs) if runs is not None else stored))
    return out


@dataclass
class DeviceMemory:
    """Memory of one device as the workbench sees it."""

    device: str
    """'cuda:0', 'cpu' or 'disk'."""
    total_bytes: int | None = None
    """Capacity (None for disk)."""
    free_bytes: int | None = None
    """Free now, for every process (None for disk)."""
    used_bytes: int | None = None
    """In use now, for every process (None for disk)."""
    allocated_bytes: int | None = None
    """Held by this process's tensors (CUDA: the caching allocator's live bytes; CPU: resident set)."""
    weight_bytes: int = 0
    """Bytes of the model's weights stored here."""
    layers: list[int] = field(default_factory=list)
    """Blocks whose weights are stored here."""


def _cpu_memory() -> tuple[int | None, int | None, int | None]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = page * os.sysconf("SC_PHYS_PAGES")
        free = page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None, None, None
    rss = None
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * page
    except (OSError, ValueError, IndexError):
        pass
    return total, free, rss


def _weight_bytes_by_device(model: nn.Module) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, p in model.named_parameters():
        path = name.rpartition(".")[0]
        where = str(p.device) if p.device.type != "meta" else stored_device(model, path)
        out[where] = out.get(where, 0) + p.numel() * p.element_size()
    return out


def memory_report(model: nn.Module, layers_path: str, main_device: torch.device) -> list[DeviceMemory]:
    """Per device: memory (total / free / used / this process) and the model's weights and blocks there.
    Lists the main device first, then every device holding weights (a GPU the model does not use is left out:
    asking it would create a CUDA context there)."""
    weights = _weight_bytes_by_device(model)
    placement = layer_placement(model, layers_path)
    names = [str(torch.device(main_device)), *weights]
    out = []
    for name in dict.fromkeys(names):
        mem = DeviceMemory(name, weight_bytes=weights.get(name, 0),
                           layers=[p.layer for p in placement if p.stored_on == name])
        if name.startswith("cuda"):
            idx = torch.device(name).index or 0  # "cuda" alone means the current device, 0 here
            free, total = torch.cuda.mem_get_info(idx)
            mem.total_bytes, mem.free_bytes, mem.used_bytes = int(total), int(free), int(total - free)
            mem.allocated_bytes = int(torch.cuda.memory_allocated(idx))
        elif name == "cpu":
            total, free, rss = _cpu_memory()
            mem.total_bytes, mem.free_bytes, mem.allocated_bytes = total, free, rss
            mem.used_bytes = None if total is None or free is None else total - free
        out.append(mem)
    return out


def lightning_placement(device: torch.device) -> tuple[str, Any]:
    """(accelerator, devices) that make a one-process Lightning run train on ``device``."""
    if device.type == "cuda":
        return "cuda", [device.index or 0]
    if device.type == "mps":
        return "mps", 1
    return "cpu", 1


__all__ = ["STATS_DTYPE", "DeviceMemory", "LayerPlacement", "execution_device", "is_dispatched", "layer_placement",
           "lightning_placement", "memory_report", "module_tensor", "stored_device", "tf32_matmuls", "to_stats"]
