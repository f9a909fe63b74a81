"""One router per resource; app.py mounts every router listed here."""
from __future__ import annotations

from fastapi import APIRouter

from . import corpora, health, model
from . import metrics as metrics_routes
from . import provenance as provenance_routes
from . import features as features_routes

ROUTERS: list[APIRouter] = [health.router, model.router, corpora.router]
ROUTERS.append(metrics_routes.router)
ROUTERS.append(provenance_routes.router)
ROUTERS.append(features_routes.router)
from . import saes as saes_routes, training as training_routes  # noqa: E402
ROUTERS += [training_routes.router, saes_routes.router]
from . import contrast as contrast_routes, inference as inference_routes, patches as patches_routes  # noqa: E402
from .. import ws_patches  # noqa: E402,F401  (registers the live-logits WS handlers)
ROUTERS += [patches_routes.router, inference_routes.router, contrast_routes.router]
