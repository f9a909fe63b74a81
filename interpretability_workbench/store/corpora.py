"""The ``corpora`` table: uploaded corpus files (the built-in corpus has no row)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .db import Database


@dataclass
class CorpusRecord:
    id: str
    """``corpus_<hex>``."""
    name: str
    """File name as uploaded."""
    path: str
    """Stored file in the workspace."""
    n_docs: int | None
    n_tokens: int | None
    """Tokens under the tokenizer that was loaded at upload time (None without a model)."""
    size_bytes: int | None
    created_at: float | None


class CorpusRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, rec: CorpusRecord) -> None:
        self.db.insert("corpora", asdict(rec))

    def get(self, corpus_id: str) -> CorpusRecord | None:
        row = self.db.get("corpora", id=corpus_id)
        return None if row is None else CorpusRecord(**row)

    def list(self) -> list[CorpusRecord]:
        return [CorpusRecord(**r) for r in self.db.query("SELECT * FROM corpora ORDER BY created_at")]
