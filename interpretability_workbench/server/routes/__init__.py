"""One router per resource; app.py mounts every router listed here (and ws.py's socket)."""
from __future__ import annotations

from fastapi import APIRouter

from .. import ws_patches  # noqa: F401  (registers the live-logits WS handlers)
from . import (behaviours, circuits, contrast, corpora, evals, explanations, features, health, inference, metrics, model,
               patches, provenance, saes, training, transcoders)

ROUTERS: list[APIRouter] = [
    health.router, model.router, corpora.router, metrics.router, provenance.router, features.router,
    training.router, saes.router, patches.router, inference.router, contrast.router, explanations.router,
    behaviours.router, transcoders.router, circuits.router, evals.router,
]
