"""Wire schemas for /api/corpora."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class CountProgressWire(BaseModel):
    documents: int = Field(description="Documents counted so far.")
    tokens: int = Field(description="Tokens counted so far.")
    bytes_done: int = Field(description="Bytes of the corpus read so far.")
    bytes_total: int = Field(description="Bytes of the corpus on disk (compressed size for compressed files).")


class CorpusInfo(BaseModel):
    id: str = Field(description="Corpus id ('default' for the built-in corpus).")
    name: str = Field(description="File name as uploaded, the registered folder or file name, or the hub dataset id.")
    kind: Literal["upload", "path", "hub"] = Field("upload", description="upload (stored in the workspace), path (registered under IWB_DATA_DIRS, read in place) or hub (a dataset in the local Hugging Face cache).")
    format: str | None = Field(None, description="txt, jsonl, jsonl.gz, jsonl.zst, parquet, shards (a folder of files), datasets (save_to_disk folder) or hub.")
    text_field: str = Field("text", description="The JSON field / column read as text.")
    status: Literal["counting", "ready", "failed"] = Field("ready", description="counting: its tokens are being counted in the background (progress in `progress` and `job` events on WS /ws); ready; failed: unreadable (see `error`).")
    error: str | None = Field(None, description="Why counting failed.")
    n_docs: int | None = Field(None, description="Number of non-empty documents (null until counted).")
    n_tokens: int | None = Field(None, description="Tokens under the tokenizer of `tokenizer` (null until counted).")
    tokenizer: str | None = Field(None, description="The model whose tokenizer counted `n_tokens`.")
    size_bytes: int | None = Field(None, description="Bytes on disk.")
    created_at: float | None = Field(None, description="Upload or registration time (unix seconds).")
    progress: CountProgressWire | None = Field(None, description="Live progress while status is counting.")


class RegisterCorpus(BaseModel):
    """A corpus already on this machine: a path under IWB_DATA_DIRS, or a hub dataset in the local cache."""

    path: str | None = Field(None, max_length=4096, description="Absolute path of a .txt/.jsonl(.gz/.zst)/.parquet file, a folder of Parquet/JSONL shards or a datasets save_to_disk folder, under one of IWB_DATA_DIRS.")
    hub: str | None = Field(None, max_length=200, description="A hub dataset id 'owner/name' read from the local Hugging Face cache (never downloaded).")
    text_field: str = Field("text", min_length=1, max_length=200, description="The JSON field / column that holds the text.")
    split: str = Field("train", min_length=1, max_length=100, description="Split to read (datasets folders with several splits, hub datasets).")
    config: str | None = Field(None, max_length=200, description="Hub dataset configuration (subset), when it has several.")
    revision: str | None = Field(None, max_length=200, description="Hub dataset revision in the cache; null = main.")

    @model_validator(mode="after")
    def _one_location(self) -> "RegisterCorpus":
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of path or hub")
        return self
