"""A request body streamed as one uploaded file, never held in memory.

Two encodings are accepted on the same route:

* ``multipart/form-data`` (what browsers send for a file input; the UI uses it): parsed incrementally with
  ``python_multipart.MultipartParser`` as the body arrives. Small form fields before the file part (e.g.
  ``text_field``) are collected; the first part with a file name is the file, its bytes are handed on chunk
  by chunk, and whatever follows it is discarded. Starlette's own ``request.form()`` would spool the whole
  file to a temporary file first (a second full copy on disk, outside the workspace, before any size or
  format check), which is why the parser is driven here instead.
* any other content type: the raw body is the file (``curl --data-binary @corpus.jsonl``), named by the
  ``filename`` query parameter.

A body that ends before the file part is complete (a client that went away) raises, so the caller's
partial file is removed.
"""
from __future__ import annotations

from typing import AsyncIterator, NamedTuple

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ..errors import BadRequest, Invalid

MAX_FIELD_BYTES = 64 * 1024
"""Largest non-file form field accepted (they are names and options)."""


class UploadBody(NamedTuple):
    filename: str
    """The file part's file name (multipart) or the ``filename`` query parameter (raw body)."""
    fields: dict[str, str]
    """Form fields sent before the file part (multipart only)."""
    chunks: AsyncIterator[bytes]
    """The file's bytes as they arrive."""


async def _raw(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BadRequest("the client went away before the upload finished; nothing was stored") from None


class _Parts:
    """Callback state of the multipart parser: fields so far, the file part's pending bytes."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []
        self.filename: str | None = None
        self.file_started = self.file_ended = False
        self._in_file = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._field_name: str | None = None
        self._field_value = bytearray()

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_part_data": self._part_data, "on_part_end": self._part_end,
                "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
                "on_header_end": self._header_end, "on_headers_finished": self._headers_finished}

    def _part_begin(self) -> None:
        self._headers, self._field_name, self._field_value = {}, None, bytearray()
        self._in_file = False

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None and not self.file_started:
            self.filename = filename.decode("utf-8", "replace")
            self.file_started = self._in_file = True
        elif filename is None and not self.file_started:
            self._field_name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(bytes(data[start:end]))
        elif self._field_name is not None:
            self._field_value.extend(data[start:end])
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise Invalid(f"form field {self._field_name!r} is over {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._in_file:
            self.file_ended, self._in_file = True, False
        elif self._field_name is not None:
            self.fields[self._field_name] = self._field_value.decode("utf-8", "replace")

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        return data


async def _multipart(request: Request, boundary: bytes) -> UploadBody:
    parts = _Parts()
    parser = MultipartParser(boundary, parts.callbacks())
    body = _raw(request).__aiter__()
    while not parts.file_started:  # read up to the file part's headers: its name is needed first
        try:
            chunk = await body.__anext__()
        except StopAsyncIteration:
            raise Invalid("the form has no file part: send the corpus as a 'file' field") from None
        parser.write(chunk)

    async def rest() -> AsyncIterator[bytes]:
        if data := parts.take():
            yield data
        while not parts.file_ended:
            try:
                chunk = await body.__anext__()
            except StopAsyncIteration:
                raise BadRequest("the upload ended before the file part was complete (the client went away "
                                 "or the form is truncated); nothing was stored") from None
            parser.write(chunk)
            if data := parts.take():
                yield data
        async for _ in body:  # the closing boundary and any later parts: read and drop
            pass

    return UploadBody(parts.filename or "", parts.fields, rest())


async def open_upload(request: Request, filename: str | None) -> UploadBody:
    """The uploaded file of ``request`` (multipart or raw body); the file name says its format."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise Invalid("multipart/form-data without a boundary; let the client library build the form")
        return await _multipart(request, boundary)
    if not filename:
        raise Invalid("give the file name as ?filename=corpus.jsonl when sending the raw file as the body "
                      "(or send multipart/form-data with a 'file' part)")
    return UploadBody(filename, {}, _raw(request))
