"""Shared wire schemas."""
from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong and what to change.")


ERRORS = {code: {"model": ErrorResponse} for code in (400, 404, 409, 413, 422, 429, 503)}
