"""Every setting of the workbench, read from environment variables with the prefix ``IWB_``.

Example: ``IWB_HOME=/data/iwb IWB_MODEL=gpt2 IWB_API_KEY=secret microscope ui``.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_HOME = Path("~/.interpretability-workbench")


class Settings(BaseSettings):
    """Workbench configuration. Each field is the env var ``IWB_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="IWB_", env_file=None, extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Workspace: SQLite db, artifacts, model cache, corpora.")
    model: str = Field("default", description="Model loaded at server start: 'default' (embedded SmolLM2-135M-Instruct), a hub id, a local folder or a .gguf file; 'none' to start without one.")
    device: str = Field("auto", description="'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', ...")
    dtype: str = Field("auto", description="'auto' (bf16 on CUDA, fp32 on CPU), 'float32', 'bfloat16', 'float16'.")
    quantization: Literal["none", "8bit", "4bit"] = Field("none", description="Load weights in 8 or 4 bit through bitsandbytes (CUDA only).")
    allow_downloads: bool = Field(False, description="Let the workbench download models from the Hugging Face hub; off: hub ids load from the local cache only and fail at once when missing.")
    device_map: Literal["none", "auto", "balanced", "balanced_low_0", "sequential"] = Field("none", description="'none': the whole model on IWB_DEVICE. 'auto' (or balanced, sequential): accelerate places a model that does not fit one device across the GPUs, CPU memory and disk (under IWB_HOME/models/offload); SAEs live on the first GPU.")
    max_memory: dict[str, str] = Field(default_factory=dict, description='Per-device budget for a device map, JSON: {"0": "20GiB", "1": "20GiB", "cpu": "64GiB"} (empty: what each device has).')
    sae_registry: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Extra registry files of pretrained SAE releases (SAELens's pretrained_saes.yaml layout; JSON list or comma-separated paths), read on top of SAELens's registry.")
    sae_downloads: bool = Field(False, description="Let pretrained SAE imports download missing files from the Hugging Face Hub (off: the local Hugging Face cache only).")
    host: str = Field("127.0.0.1", description="Address the server binds.")
    port: int = Field(8000, description="Port the server binds.")
    api_key: str | None = Field(None, description="API key; required whenever the server binds a non-loopback address.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins (JSON list or comma-separated). Never '*'.")
    rate_limit: str = Field("600/minute", description="Rate limit for expensive routes (slowapi syntax).")
    max_body_bytes: int = Field(64 * 1024 * 1024, description="Largest request body accepted (413 beyond); corpus uploads have their own cap.")
    max_corpus_bytes: int = Field(20 * 1024 ** 3, description="Largest corpus upload, streamed to disk (413 beyond); bigger corpora are registered by path.")
    data_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list, description="Folders whose corpora may be registered by path (JSON list or comma-separated); empty: registering by path is off.")
    max_prompt_tokens: int = Field(1024, description="Longest prompt accepted for inference (422 beyond).")
    max_concurrent_inference: int = Field(16, description="Inference-type requests computed at once; concurrent /api/inference requests among them run as one padded batch per patch set.")
    max_queued: int = Field(64, description="Inference-type requests that wait for a turn (fair per client) beyond those computing. Beyond them, or once one has waited IWB_REQUEST_TIMEOUT_S, the answer is 503 with Retry-After.")
    batch_window_ms: float = Field(2.0, description="Under load, how long the inference batcher waits for more requests before starting a batch.")
    request_timeout_s: float = Field(120.0, description="Timeout for a single long request (504 beyond).")
    explainer_url: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM, llama.cpp's server, ollama, a hosted API) for feature explanations, e.g. http://127.0.0.1:11434; /v1/chat/completions is appended.")
    explainer_model: str | None = Field(None, description="Model name the explanation endpoint serves.")
    explainer_api_key: str | None = Field(None, description="API key for the explanation endpoint (sent as a Bearer token).")
    explainer_timeout_s: float = Field(60.0, description="Timeout per explanation request to the endpoint.")
    context_size: int = Field(128, description="Default context length in tokens for recording activations.")
    analysis_tokens: int = Field(0, ge=0, description="Tokens a feature analysis reads when the request names none; 0: the whole corpus (the built-in one: ~155k tokens).")
    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(True, description="Structured JSON log lines.")

    @field_validator("sae_registry", mode="before")
    @classmethod
    def _split_paths(cls, v: object) -> object:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                return json.loads(text)
            return [p.strip() for p in text.split(",") if p.strip()]
        return v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip().startswith("["):
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @field_validator("data_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, v: object) -> object:
        if isinstance(v, str):
            return json.loads(v) if v.strip().startswith("[") else [d.strip() for d in v.split(",") if d.strip()]
        return v

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    # workspace layout -----------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / "workbench.sqlite3"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def model_cache_dir(self) -> Path:
        return self.home / "models"

    @property
    def corpora_dir(self) -> Path:
        return self.home / "corpora"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def sae_registry_files(self) -> list[Path]:
        """The extra pretrained-SAE registry files (``IWB_SAE_REGISTRY``), user paths expanded."""
        return [Path(p).expanduser() for p in self.sae_registry]

    def ensure_dirs(self) -> None:
        for d in (self.home, self.artifacts_dir, self.model_cache_dir, self.corpora_dir, self.runs_dir):
            d.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def is_loopback(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")


__all__ = ["Settings", "get_settings", "is_loopback", "DEFAULT_HOME"]
_ = os  # env is read by pydantic-settings
