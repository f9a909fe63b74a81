"""Who may talk to the server, and how much: API key (REST header, WebSocket token), CORS with explicit
origins, slowapi rate limits on expensive routes by path, the bind check at start-up.

Everything here is applied by ``middleware.install_production`` so that routers need no decorators:

- API key: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` on every ``/api`` route except
  ``/api/health``; the WebSocket takes ``?token=<key>`` or the ``iwb_token`` cookie (or the same headers).
  A key is required whenever the server binds a non-loopback address or ``IWB_API_KEY`` is set.
- Rate limits: ``IWB_RATE_LIMIT`` (slowapi syntax, e.g. ``600/minute``) per client and route group on
  the requests in ``EXPENSIVE_PATHS``; 429 with ``Retry-After``.
"""
from __future__ import annotations

import hmac
import logging
import math
import os
import re
import time
import warnings
from http.cookies import SimpleCookie
from typing import Any, Callable, NamedTuple
from urllib.parse import parse_qs

from ..settings import Settings, is_loopback

log = logging.getLogger(__name__)

# Paths open without a key (liveness probes, container healthchecks).
PUBLIC_PATHS = frozenset({"/api/health"})

WRITE = frozenset({"POST", "PUT", "PATCH"})
ANY = frozenset({"GET", "POST", "PUT", "PATCH"})

# Requests that start heavy torch work: rate limited (429) per client. (methods, path pattern)
EXPENSIVE_PATHS: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple((m, re.compile(p)) for m, p in (
    (WRITE, r"^/api/inference(/|$)"),
    (WRITE, r"^/api/generate(/|$)"),
    (WRITE, r"^/api/training(/|$)"),
    (ANY, r"^/api/provenance(/|$)"),  # the graph is computed on GET
    (WRITE, r"^/api/contrast(/|$)"),
    (WRITE, r"^/api/model$"),
    (WRITE, r"^/api/saes/[^/]+/(activations|contrast|analysis|analyze)(/|$)"),
    (WRITE, r"^/api/patches/[^/]+/evaluate$"),
))
# Of those, the ones computed inside the request (not queued as a job): bounded concurrency (503).
INFERENCE_PATHS: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple((m, re.compile(p)) for m, p in (
    (WRITE, r"^/api/inference(/|$)"),
    (WRITE, r"^/api/generate(/|$)"),
    (ANY, r"^/api/provenance(/|$)"),
    (WRITE, r"^/api/contrast(/|$)"),
    (WRITE, r"^/api/saes/[^/]+/(activations|contrast)(/|$)"),
    (WRITE, r"^/api/patches/[^/]+/evaluate$"),
))


class BindError(SystemExit):
    """Raised (exit status 2) when the server would be exposed without an API key."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def auth_required(settings: Settings) -> bool:
    return bool(settings.api_key) or not is_loopback(settings.host)


def check_bind(settings: Settings) -> None:
    """Refuse to start on a non-loopback address without an API key, and with a wildcard CORS origin."""
    if not is_loopback(settings.host) and not settings.api_key:
        msg = (f"refusing to bind {settings.host}:{settings.port} without an API key: anyone on the network "
               f"could drive the model. Set IWB_API_KEY=<a long random secret> (clients send it as the "
               f"X-API-Key header, the WebSocket as ?token=), or bind 127.0.0.1.")
        print(f"error: {msg}", flush=True)
        raise BindError(msg)
    check_cors(settings)


def check_cors(settings: Settings) -> list[str]:
    origins = [o.rstrip("/") for o in settings.cors_origins]
    if "*" in origins:
        raise ValueError("IWB_CORS_ORIGINS must list explicit origins (e.g. https://lab.example.org); "
                         "'*' is refused because the API takes credentials")
    return origins


def is_expensive(method: str, path: str) -> bool:
    return any(method in m and p.search(path) for m, p in EXPENSIVE_PATHS)


def is_inference(method: str, path: str) -> bool:
    return any(method in m and p.search(path) for m, p in INFERENCE_PATHS)


def key_matches(provided: str | None, expected: str | None) -> bool:
    if not provided or not expected:
        return False
    return hmac.compare_digest(provided.encode(), expected.encode())


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def rest_key(scope: dict[str, Any]) -> str | None:
    """The key a REST request presents: ``X-API-Key`` or ``Authorization: Bearer``."""
    h = _headers(scope)
    if h.get("x-api-key"):
        return h["x-api-key"]
    auth = h.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def ws_key(scope: dict[str, Any]) -> str | None:
    """The key a WebSocket presents: ``?token=``, the ``iwb_token`` cookie, or the REST headers."""
    qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if qs.get("token"):
        return qs["token"][0]
    cookie = _headers(scope).get("cookie")
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie)
        except Exception:  # noqa: BLE001 - a malformed cookie header is just no token
            jar = SimpleCookie()
        if "iwb_token" in jar:
            return jar["iwb_token"].value
    return rest_key(scope)


def needs_key(path: str) -> bool:
    """REST paths behind the key: all of /api except the public ones (the UI shell stays loadable)."""
    return (path == "/api" or path.startswith("/api/")) and path not in PUBLIC_PATHS


def make_ws_auth(settings: Settings) -> Callable[[Any], bool]:
    """The ``app.state.ws_auth`` hook ``server/ws.py`` calls with the WebSocket before accepting it."""
    def ws_auth(ws: Any) -> bool:
        if not auth_required(settings):
            return True
        return key_matches(ws_key(ws.scope), settings.api_key)
    return ws_auth


class RateDecision(NamedTuple):
    allowed: bool
    retry_after_s: int


class RateLimiter:
    """slowapi's Limiter (limits' moving window, in memory) applied by path, not by decorator."""

    def __init__(self, limit: str) -> None:
        from limits import parse_many
        from slowapi import Limiter
        from slowapi.util import get_remote_address

        # config_filename: stop slowapi from reading a stray ./.env (ours is for docker compose)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Config file '/dev/null' not found": intended, it is empty
            self.slowapi = Limiter(key_func=get_remote_address, strategy="moving-window",
                                   storage_uri="memory://", config_filename=os.devnull)
        self.items = parse_many(limit)
        self.limit = limit

    def hit(self, client: str, group: str) -> RateDecision:
        for item in self.items:
            if not self.slowapi.limiter.hit(item, client, group):
                stats = self.slowapi.limiter.get_window_stats(item, client, group)
                return RateDecision(False, max(1, math.ceil(stats.reset_time - time.time())))
        return RateDecision(True, 0)


def client_id(scope: dict[str, Any], *, by_key: bool = True) -> str:
    """Rate-limit identity: the (already verified) API key's fingerprint when keys are in force, else the
    peer address (so unverified, rotating keys cannot dodge the limit)."""
    key = rest_key(scope) if by_key else None
    if key:
        return "key:" + hmac.new(b"iwb-rate", key.encode(), "sha256").hexdigest()[:16]
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def rate_group(path: str) -> str:
    """The bucket a path counts against: its first two segments (``/api/inference``, ``/api/saes``...)."""
    parts = path.strip("/").split("/")
    return "/".join(parts[:2])


__all__ = ["check_bind", "check_cors", "auth_required", "make_ws_auth", "RateLimiter", "BindError",
           "is_expensive", "is_inference", "key_matches", "rest_key", "ws_key", "needs_key",
           "EXPENSIVE_PATHS", "INFERENCE_PATHS", "PUBLIC_PATHS"]
