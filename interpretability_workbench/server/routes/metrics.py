from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from ..metrics import CONTENT_TYPE

router = APIRouter(prefix="/api", tags=["metrics"])


@router.get("/metrics", response_model=str, response_class=PlainTextResponse,
            summary="Prometheus metrics: request counts and latencies, inference latency, training throughput")
async def metrics(request: Request) -> Response:
    m = getattr(request.app.state, "metrics", None)
    body = m.render() if m is not None else b""
    return Response(content=body, media_type=CONTENT_TYPE)
