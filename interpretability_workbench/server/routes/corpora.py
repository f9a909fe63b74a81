"""/api/corpora: the built-in corpus and uploaded corpus files."""
from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, UploadFile

from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.corpora import CorpusInfo

router = APIRouter(prefix="/api/corpora", tags=["corpora"])


def _wire(rec) -> CorpusInfo:  # noqa: ANN001 - a store.corpora.CorpusRecord
    return CorpusInfo(**{k: v for k, v in asdict(rec).items() if k != "path"})


@router.get("", response_model=list[CorpusInfo], summary="Corpora: the built-in default and uploads")
def list_corpora(state: StateDep) -> list[CorpusInfo]:
    return [_wire(c) for c in state.corpora.list()]


@router.post("", response_model=CorpusInfo, status_code=201, responses=ERRORS,
             summary="Upload a corpus file (.txt, .jsonl with a 'text' field, .parquet with a 'text' column)")
def upload_corpus(file: UploadFile, state: StateDep) -> CorpusInfo:
    return _wire(state.corpora.add(file.filename or "", file.file.read()))
