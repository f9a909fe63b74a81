"""/api/corpora: the built-in corpus, streamed uploads, corpora registered by path or hub id."""
from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query, Request

from ...activations.corpora import CorpusView
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.corpora import CorpusInfo, CountProgressWire, RegisterCorpus
from ..upload_body import open_upload

router = APIRouter(prefix="/api/corpora", tags=["corpora"])

UPLOAD_PATH = "/api/corpora"
"""The streamed upload route: the body-size guard applies IWB_MAX_CORPUS_BYTES to it instead of IWB_MAX_BODY_BYTES."""

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "title": "CorpusUpload",
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "The corpus file: .txt, .jsonl, .jsonl.gz, .jsonl.zst or .parquet."},
            "text_field": {"type": "string", "description": "Field/column with the text (before the file part)."}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "The raw file; name it with ?filename=."}},
}}}


def _wire(view: CorpusView) -> CorpusInfo:
    rec, p = view
    d = {k: v for k, v in asdict(rec).items() if k in CorpusInfo.model_fields}
    return CorpusInfo(**d, progress=CountProgressWire(**p._asdict()) if p is not None else None)


@router.get("", response_model=list[CorpusInfo], summary="Corpora: the built-in default, uploads and registered ones")
def list_corpora(state: StateDep) -> list[CorpusInfo]:
    return [_wire(c) for c in state.corpora.list()]


@router.get("/{corpus_id}", response_model=CorpusInfo, responses=ERRORS, summary="One corpus (with its count progress)")
def get_corpus(corpus_id: str, state: StateDep) -> CorpusInfo:
    return _wire(state.corpora.get(corpus_id))


@router.post("", response_model=CorpusInfo, status_code=201, responses=ERRORS, openapi_extra=_UPLOAD_BODY,
             summary="Upload a corpus file, streamed to disk under IWB_MAX_CORPUS_BYTES (413 beyond)")
async def upload_corpus(
    request: Request, state: StateDep,
    filename: str | None = Query(None, max_length=255, description="File name (its suffix says the format) when the body is the raw file."),
    text_field: str | None = Query(None, min_length=1, max_length=200, description="Field/column with the text (default 'text')."),
) -> CorpusInfo:
    """multipart/form-data with a `file` part (what browsers send), or the raw file as the body with
    `?filename=`. The file is written to disk as it arrives; an interrupted or oversized upload leaves
    nothing. Its tokens are then counted in the background (`status: counting`)."""
    body = await open_upload(request, filename)
    field = text_field or body.fields.get("text_field") or "text"
    rec = await state.corpora.add_stream(body.filename, body.chunks, text_field=field)
    return _wire(CorpusView(rec, state.corpora.jobs.progress(rec.id)))


@router.post("/register", response_model=CorpusInfo, status_code=201, responses=ERRORS,
             summary="Register a corpus already on this machine (a path under IWB_DATA_DIRS, or a cached hub dataset)")
def register_corpus(req: RegisterCorpus, state: StateDep) -> CorpusInfo:
    if req.path is not None:
        rec = state.corpora.register_path(req.path, text_field=req.text_field)
    else:
        rec = state.corpora.register_hub(req.hub or "", text_field=req.text_field, split=req.split,
                                         config=req.config, revision=req.revision)
    return _wire(CorpusView(rec, state.corpora.jobs.progress(rec.id)))
