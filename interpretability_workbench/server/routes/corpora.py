from __future__ import annotations

from fastapi import APIRouter, UploadFile

from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.corpora import CorpusInfo

router = APIRouter(prefix="/api/corpora", tags=["corpora"])


@router.get("", response_model=list[CorpusInfo], summary="Corpora: the built-in default and uploads")
def list_corpora(state: StateDep) -> list[CorpusInfo]:
    return [CorpusInfo(**c) for c in state.list_corpora()]


@router.post("", response_model=CorpusInfo, status_code=201, responses=ERRORS,
             summary="Upload a corpus file (.txt, .jsonl with a 'text' field, .parquet with a 'text' column)")
def upload_corpus(file: UploadFile, state: StateDep) -> CorpusInfo:
    data = file.file.read()
    return CorpusInfo(**state.add_corpus(file.filename or "", data))
