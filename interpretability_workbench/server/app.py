"""FastAPI app factory: lifespan builds the WorkbenchState (the composition root); routers; errors as
{"detail": ...}; the WebSocket message schemas in the OpenAPI document; serves the built UI (ui/dist) at ``/``."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import WorkbenchError
from ..settings import Settings, get_settings
from ..state import WorkbenchState
from . import ws
from .middleware import install_production
from .routes import ROUTERS
from .schemas.ws import openapi_components

log = logging.getLogger(__name__)
UI_DIST = Path(__file__).resolve().parents[2] / "ui" / "dist"

DESCRIPTION = """A live laboratory for mechanistic interpretability of language models: load a causal LM,
record activations, train sparse autoencoders, browse features, hot-patch the model along features and
compare next-token distributions, follow a feature's provenance upstream, export to SAELens and PEFT."""


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def create_app(settings: Settings | None = None, state: WorkbenchState | None = None,
               *, load_model: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st = state or WorkbenchState(settings)
        app.state.workbench = st
        if load_model and st.model.lm is None and settings.model.lower() != "none":
            st.model.load_in_background(settings.model)
        try:
            yield
        finally:
            shutdown = getattr(st, "shutdown", None)
            if shutdown:
                shutdown()
            if state is None:
                st.close()

    app = FastAPI(title="Interpretability Workbench", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)

    @app.exception_handler(WorkbenchError)
    async def _workbench_error(_req: Request, exc: WorkbenchError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    install_production(app, settings)  # auth, limits, timeouts, CORS, logs, metrics (server/middleware.py)
    for r in ROUTERS:
        app.include_router(r)
    app.include_router(ws.router)
    _add_ws_schemas(app)
    _mount_ui(app)
    return app


def _add_ws_schemas(app: FastAPI) -> None:
    """List the WebSocket message unions (``WsServerMessage``, ``WsClientMessage``) among the components."""
    base = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = base()
            comps = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, sch in openapi_components().items():
                comps.setdefault(name, sch)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _mount_ui(app: FastAPI) -> None:
    if not (UI_DIST / "index.html").is_file():
        return
    if (UI_DIST / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=UI_DIST / "assets"), name="assets")

    @app.get("/{path:path}", include_in_schema=False)
    async def spa(path: str) -> FileResponse:
        if path.startswith(("api/", "ws")):
            return JSONResponse({"detail": f"no route /{path}"}, status_code=404)  # type: ignore[return-value]
        f = (UI_DIST / path).resolve()
        if path and f.is_file() and UI_DIST in f.parents:
            return FileResponse(f)
        return FileResponse(UI_DIST / "index.html")
