from __future__ import annotations

import time

from fastapi import APIRouter

from ... import __version__
from ..deps import StateDep
from ..schemas.health import Health

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness and model status")
async def health(state: StateDep) -> Health:
    return Health(status="ok", model_status=state.model.status, uptime_s=time.time() - state.started_at,
                  version=__version__)
