"""Every setting of the workbench, read from environment variables with the prefix ``IWB_``.

Example: ``IWB_HOME=/data/iwb IWB_MODEL=gpt2 IWB_API_KEY=secret microscope ui``.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    host: str = Field("127.0.0.1", description="Address the server binds.")
    port: int = Field(8000, description="Port the server binds.")
    api_key: str | None = Field(None, description="API key; required whenever the server binds a non-loopback address.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins (JSON list or comma-separated). Never '*'.")
    rate_limit: str = Field("600/minute", description="Rate limit for expensive routes (slowapi syntax).")
    max_body_bytes: int = Field(64 * 1024 * 1024, description="Largest request body accepted (413 beyond).")
    max_prompt_tokens: int = Field(1024, description="Longest prompt accepted for inference (422 beyond).")
    max_concurrent_inference: int = Field(4, description="Inference requests computed or queued at once (503 beyond).")
    request_timeout_s: float = Field(120.0, description="Timeout for a single long request (504 beyond).")
    context_size: int = Field(128, description="Default context length in tokens for recording activations.")
    analysis_tokens: int = Field(0, ge=0, description="Tokens a feature analysis reads when the request names none; 0: the whole corpus (the built-in one: ~155k tokens).")
    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(True, description="Structured JSON log lines.")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip().startswith("["):
            return [o.strip() for o in v.split(",") if o.strip()]
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
