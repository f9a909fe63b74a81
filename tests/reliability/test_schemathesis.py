"""Property-based API fuzzing with schemathesis over every operation in the app's OpenAPI schema (in-process
ASGI, a few examples each): no 5xx, and every response conforms to its documented schema.

``POST /api/model`` is left out: a generated name could swap the served model mid-run (its validation is
covered by the model tests). Generated hub ids never reach the network (HF_HUB_OFFLINE)."""
from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings as hsettings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from interpretability_workbench.server.app import create_app

EXCLUDED = {("POST", "/api/model")}
MAX_EXAMPLES = 6


def _without_lifespan(app):
    """The fixture runs the real lifespan; schemathesis's own client must not start/stop it again."""
    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await app(scope, receive, send)
    return asgi


def test_api_no_5xx_and_conforms(state, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # generous limits: the fuzzer must meet the routes, not the rate limiter
    s = state.settings.model_copy(update={"rate_limit": "100000/minute", "max_concurrent_inference": 64})
    app = create_app(s, state, load_model=False)
    failures: dict[str, str] = {}
    n_ops = 0
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", _without_lifespan(app))
        for result in schema.get_all_operations():
            op = result.ok()
            if (op.method.upper(), op.path) in EXCLUDED:
                continue
            n_ops += 1

            @given(case=op.as_strategy())
            @hsettings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                       phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def run(case) -> None:
                case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

            try:
                run()
            except Exception as e:  # noqa: BLE001 - collect every operation's failure, report all
                failures[f"{op.method.upper()} {op.path}"] = f"{type(e).__name__}: {str(e)[:1500]}"
    print(f"schemathesis: {n_ops} operations, {MAX_EXAMPLES} examples each")
    assert n_ops >= 4, "the schema lists too few operations"
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
