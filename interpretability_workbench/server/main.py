"""Run the server with uvicorn."""
from __future__ import annotations

import os

from ..settings import Settings


def serve(host: str | None = None, port: int | None = None, model: str | None = None) -> int:
    import uvicorn

    from .app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port, "model": model}.items() if v is not None}
    settings = Settings(**overrides)
    check = getattr(__import__(f"{__package__}.security", fromlist=["x"]), "check_bind", None) \
        if os.path.exists(os.path.join(os.path.dirname(__file__), "security.py")) else None
    if check:
        check(settings)
    from .middleware import configure_logging

    configure_logging(settings)  # JSON lines (IWB_LOG_JSON); the middleware logs each request
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                ws_ping_interval=20, ws_ping_timeout=20, log_config=None, access_log=False)
    return 0
