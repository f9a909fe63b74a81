from __future__ import annotations

from pydantic import BaseModel, Field


class CorpusInfo(BaseModel):
    id: str = Field(description="Corpus id ('default' for the built-in corpus).")
    name: str = Field(description="File name as uploaded.")
    n_docs: int | None = Field(None, description="Number of documents.")
    n_tokens: int | None = Field(None, description="Tokens under the loaded model's tokenizer.")
    size_bytes: int | None = Field(None, description="File size in bytes.")
    created_at: float | None = Field(None, description="Upload time (unix seconds).")
