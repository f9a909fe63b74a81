"""The production guard around every HTTP request, as one pure-ASGI middleware (WebSockets pass through;
``server/ws.py`` asks ``app.state.ws_auth`` before accepting a socket):

    CORS (explicit origins) -> access log + metrics -> API key (401) -> body limit (413)
        -> rate limit on expensive routes (429 + Retry-After) -> inference admission queue (503 + Retry-After)
        -> request timeout (504) -> the app

The streamed corpus upload (``POST /api/corpora``) is the one exception to the body limit and the timeout:
its body goes to disk as it arrives, under ``IWB_MAX_CORPUS_BYTES`` (plus room for the multipart framing),
with a 413 up front when the declared Content-Length is already over it; its duration is the client's
bandwidth, so no request timeout applies.

The inference admission queue (``server/admission.py``): at most ``IWB_MAX_CONCURRENT_INFERENCE``
inference-type requests compute at once (concurrent ``/api/inference`` requests among them are batched by
the engine); up to ``IWB_MAX_QUEUED`` more wait, first come first served per client (API key, else peer
address) and round robin between clients. A request beyond the queue, or still waiting when its deadline
(``IWB_REQUEST_TIMEOUT_S`` after it arrived) passes, gets 503 with ``Retry-After``: it never started, so
retrying is safe. An admitted request has what is left of its deadline before the 504.

``install_production(app, settings)`` wires it all, plus a JSON 500 for anything unhandled and the
metrics' bus listener. ``configure_logging(settings)`` sets JSON log lines for the served process.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

from ..settings import Settings
from .admission import FairQueue
from .metrics import Metrics
from .security import (RateLimiter, auth_required, check_cors, client_id, is_expensive, is_inference,
                       key_matches, make_ws_auth, needs_key, rate_group, rest_key)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("interpretability_workbench.access")
log = logging.getLogger(__name__)


class _BodyTooLarge(Exception):
    pass


async def send_json(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


class ProductionMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, openapi_app: Any = None) -> None:
        self.app, self.settings, self.metrics, self.openapi_app = app, settings, metrics, openapi_app
        self._route_templates: list[tuple[re.Pattern[str], str]] | None = None
        self.require_key = auth_required(settings)
        self.limiter = RateLimiter(settings.rate_limit)
        self.max_body = settings.max_body_bytes
        self.max_corpus = settings.max_corpus_bytes + UPLOAD_FRAMING_BYTES
        self.max_inference = max(1, settings.max_concurrent_inference)
        self.timeout = settings.request_timeout_s
        self.queue = FairQueue(self.max_inference, settings.max_queued)  # touched only on the event loop thread

    @property
    def in_flight(self) -> int:
        """Inference requests admitted and not yet finished (a timed-out thread still counts)."""
        return self.queue.active

    def _templates(self) -> list[tuple[re.Pattern[str], str]]:
        if self._route_templates is None:
            self._route_templates = path_templates(self.openapi_app) if self.openapi_app is not None else []
        return self._route_templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        method, path = scope["method"], scope["path"]
        status = {"code": 0}

        async def send_status(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        try:
            await self._guard(scope, receive, send_status, method, path)
        except BaseException:
            status["code"] = status["code"] or 500
            raise
        finally:
            seconds = time.perf_counter() - t0
            route = _route_label(scope, path, self._templates() if scope.get("route") is None else None)
            self.metrics.observe(method, route, path, status["code"], seconds)
            if status["code"] in (401, 413, 429, 503, 504):
                self.metrics.rejected.labels(reason=str(status["code"])).inc()
            client = scope.get("client")
            access_log.info("request", extra={
                "method": method, "path": path, "route": route, "status": status["code"],
                "latency_ms": round(seconds * 1000, 2), "client": client[0] if client else None})

    async def _guard(self, scope: Scope, receive: Receive, send: Send, method: str, path: str) -> None:
        # 1. API key
        if self.require_key and needs_key(path) and not key_matches(rest_key(scope), self.settings.api_key):
            await send_json(send, 401, "missing or wrong API key: send it as the X-API-Key header "
                                       "(or Authorization: Bearer <key>)", {"WWW-Authenticate": "Bearer"})
            return
        # 2. body size, declared
        length = _content_length(scope)
        upload = is_corpus_upload(method, path)
        limit = self.max_corpus if upload else self.max_body
        if length is not None and length > limit:
            what = ("the corpus size limit (IWB_MAX_CORPUS_BYTES); register a corpus that is already on the "
                    "server by path (POST /api/corpora/register) or raise the limit") if upload else \
                "the limit (IWB_MAX_BODY_BYTES); send a smaller file or raise the limit"
            await send_json(send, 413, f"request body of {length} bytes exceeds {limit} bytes, {what}")
            return
        # 3. rate limit
        if is_expensive(method, path):
            decision = self.limiter.hit(client_id(scope, by_key=self.require_key), rate_group(path))
            if not decision.allowed:
                await send_json(send, 429, f"rate limit {self.limiter.limit} exceeded for {rate_group(path)}; "
                                           f"retry in {decision.retry_after_s}s (IWB_RATE_LIMIT)",
                                {"Retry-After": str(decision.retry_after_s)})
                return
        # 4. inference admission: compute now, or wait in the fair queue, or 503 + Retry-After
        release: Callable[[], None] | None = None
        timeout = self.timeout
        if is_inference(method, path):
            got = await self.queue.admit(client_id(scope, by_key=self.require_key), self.timeout)
            self.metrics.queued.set(self.queue.queued)
            if not got.admitted:
                retry = self.queue.retry_after_s()
                if got.reason == "full":
                    detail = (f"the inference queue is full: {self.queue.active} requests computing "
                              f"(IWB_MAX_CONCURRENT_INFERENCE={self.max_inference}) and {self.queue.queued} waiting "
                              f"(IWB_MAX_QUEUED={self.queue.max_queued}); retry in {retry}s")
                else:
                    detail = (f"waited {got.waited_s:.1f}s in the inference queue without a turn "
                              f"(IWB_REQUEST_TIMEOUT_S={self.timeout:g}); retry in {retry}s")
                await send_json(send, 503, detail, {"Retry-After": str(retry)})
                return
            timeout = max(0.001, self.timeout - got.waited_s)
            self.metrics.in_flight.set(self.queue.active)
            admitted_at = time.monotonic()

            def release() -> None:  # when the work really ends (a timed-out thread keeps its slot)
                self.queue.release(time.monotonic() - admitted_at)
                self.metrics.in_flight.set(self.queue.active)
                self.metrics.queued.set(self.queue.queued)
        await self._call_with_limits(scope, receive, send, release, limit, None if upload else timeout)

    async def _call_with_limits(self, scope: Scope, receive: Receive, send: Send,
                                on_done: Callable[[], None] | None, max_body: int, timeout: float | None) -> None:
        """Count the streamed body (413 once past the limit) and bound the time (504).

        The app runs as its own task: on timeout the 504 goes out at once, even while a sync route's
        thread is still computing (threads cannot be interrupted); whatever the app sends later is dropped.
        ``timeout`` is ``IWB_REQUEST_TIMEOUT_S`` (an inference request gets what its wait left; None: no bound).

        An inference request (``on_done`` set) is not cancelled on timeout or disconnect: its work runs in a
        thread that cannot be interrupted (cancelling the task would only hide it), so the work runs to its
        end and ``on_done`` frees its queue slot then, not earlier.
        """
        seen = {"bytes": 0, "too_large": False, "started": False, "replaced": False}
        which = "IWB_MAX_CORPUS_BYTES" if max_body != self.max_body else "IWB_MAX_BODY_BYTES"
        too_large_detail = (f"request body exceeds the limit of {max_body} bytes ({which}); "
                            f"send a smaller file or raise the limit")

        async def limited_receive() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                seen["bytes"] += len(msg.get("body", b""))
                if seen["bytes"] > max_body:
                    seen["too_large"] = True
                    raise _BodyTooLarge()
            return msg

        async def guarded_send(msg: Message) -> None:
            if seen["replaced"]:
                return
            if msg["type"] == "http.response.start":
                if seen["too_large"]:  # the app turned our exception into its own error: say 413
                    seen["replaced"] = seen["started"] = True
                    await send_json(send, 413, too_large_detail)
                    return
                seen["started"] = True
            await send(msg)

        task = asyncio.ensure_future(self.app(scope, limited_receive, guarded_send))
        task.add_done_callback(_retrieve)
        if on_done is not None:
            task.add_done_callback(lambda _t: on_done())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            seen["replaced"] = True
            if on_done is None:
                task.cancel()
            raise
        if task in done:
            exc = None if task.cancelled() else task.exception()
            if isinstance(exc, _BodyTooLarge):
                if not seen["started"]:
                    await send_json(send, 413, too_large_detail)
            elif exc is not None:
                raise exc
            return
        log.warning("request timed out after %.1fs: %s %s", timeout, scope["method"], scope["path"])
        started, seen["replaced"] = seen["started"], True
        if on_done is None:
            task.cancel()
        if not started:
            await send_json(send, 504, f"the request took longer than {timeout:g}s "
                                       f"(IWB_REQUEST_TIMEOUT_S); make it smaller (shorter text, fewer "
                                       f"tokens or features) or raise the timeout")


UPLOAD_FRAMING_BYTES = 1 << 20
"""Room for the multipart boundaries and headers around a corpus file of the maximal size."""


def is_corpus_upload(method: str, path: str) -> bool:
    """The streamed corpus upload route (its own size cap, no timeout)."""
    return method == "POST" and path.rstrip("/") == "/api/corpora"


def _retrieve(task: asyncio.Future) -> None:
    """Mark a background task's exception as seen (a timed-out request's late failure is not news)."""
    if not task.cancelled():
        task.exception()


def _route_label(scope: Scope, path: str, templates: "list[tuple[re.Pattern[str], str]] | None" = None) -> str:
    """The route template (bounded label cardinality), also for requests refused before routing (matched
    against the OpenAPI paths); the SPA catch-all counts as static or unmatched."""
    route = getattr(scope.get("route"), "path", None)
    if route is None and templates:
        route = next((t for rx, t in templates if rx.match(path)), None)
    if route and "{path:path}" not in route:
        return route
    return "<unmatched>" if path.startswith(("/api", "/ws")) else "<static>"


def path_templates(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """OpenAPI path templates as regexes, literal segments before parameters (``/api/saes/import`` wins
    over ``/api/saes/{sae_id}``)."""
    try:
        paths = list(app.openapi().get("paths", {}))
    except Exception:  # noqa: BLE001 - labelling must never fail a request
        return []
    paths.sort(key=lambda p: (p.count("{"), -len(p)))
    return [(re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(p)) + "$"), p) for p in paths]


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def install_production(app: Any, settings: Settings) -> Metrics:
    """Add the guard middleware, CORS, the WebSocket auth hook, a JSON 500 handler and metrics to ``app``."""
    from fastapi.responses import JSONResponse
    from starlette.middleware.cors import CORSMiddleware

    origins = check_cors(settings)
    metrics = Metrics()
    app.state.metrics = metrics
    app.state.ws_auth = make_ws_auth(settings)
    app.add_middleware(ProductionMiddleware, settings=settings, metrics=metrics, openapi_app=app)
    if origins:  # outermost, so preflights and 401/429 answers carry CORS headers
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=True,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization"],
                           expose_headers=["Retry-After"])

    async def unhandled(_req: Any, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %r", exc, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"},
                            status_code=500)
    app.add_exception_handler(Exception, unhandled)

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as maybe_state:
            st = getattr(a.state, "workbench", None)
            if st is not None:
                metrics.attach(st)
            try:
                yield maybe_state
            finally:
                metrics.detach()
    app.router.lifespan_context = lifespan
    return metrics


# logging ---------------------------------------------------------------------------------
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg and every ``extra=`` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                               "logger": record.name, "msg": record.getMessage()}
        for k, v in vars(record).items():
            if k not in _STD_ATTRS and not k.startswith("_"):
                out[k] = v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Log lines to stderr, JSON when ``IWB_LOG_JSON`` (the default); idempotent."""
    root = logging.getLogger()
    root.setLevel(settings.log_level.upper())
    for h in root.handlers:
        if getattr(h, "_iwb", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._iwb = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if settings.log_json
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    if settings.log_json:  # uvicorn's own lines through the same formatter
        for name in ("uvicorn", "uvicorn.error"):
            lg = logging.getLogger(name)
            lg.handlers = [handler]
            lg.propagate = False


__all__ = ["ProductionMiddleware", "install_production", "configure_logging", "JsonFormatter"]
