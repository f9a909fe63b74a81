from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(description="'ok' when the server answers.")
    model_status: str = Field(description="none, loading, ready or error.")
    uptime_s: float = Field(description="Seconds since start.")
    version: str = Field(description="Workbench version.")
