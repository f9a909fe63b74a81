"""Typed errors of the explanation pipeline.

Each carries a short ``kind`` that the job stores beside the message (so the UI can group failures) and an
HTTP status for the REST layer when an error surfaces directly (e.g. a "test the endpoint" request).
"""
from __future__ import annotations

from ...errors import Invalid, WorkbenchError


class ChatError(WorkbenchError):
    """A chat completion could not be obtained from the explainer/scorer model."""

    status_code = 502
    kind = "chat_error"


class ChatTimeout(ChatError):
    """The endpoint did not answer within the timeout (after the allowed retries)."""

    status_code = 504
    kind = "timeout"


class ChatUnavailable(ChatError):
    """The endpoint could not be reached (connection refused, DNS, TLS)."""

    status_code = 503
    kind = "unreachable"


class ChatRefused(ChatError):
    """The endpoint rejected the request (HTTP 4xx other than 401/403/429) or the model refused to answer."""

    kind = "refused"

    def __init__(self, detail: str, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.http_status = http_status


class ChatUnauthorized(ChatRefused):
    """HTTP 401/403: the API key is missing or wrong."""

    kind = "unauthorized"


class ChatRateLimited(ChatRefused):
    """HTTP 429 on every attempt."""

    status_code = 503
    kind = "rate_limited"


class ChatServerError(ChatError):
    """HTTP 5xx on every attempt."""

    kind = "server_error"

    def __init__(self, detail: str, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.http_status = http_status


class ChatProtocolError(ChatError):
    """The endpoint answered, but not with an OpenAI chat-completions JSON body."""

    kind = "malformed_response"


class PromptTooLong(ChatError):
    """The prompt plus the new tokens do not fit the local model's context."""

    status_code = 413
    kind = "prompt_too_long"


class MalformedReply(WorkbenchError):
    """The model answered, but its text does not follow the format the prompt asked for."""

    status_code = 502
    kind = "malformed_reply"

    def __init__(self, detail: str, reply: str = "") -> None:
        super().__init__(detail)
        self.reply = reply


class NotEnoughExamples(Invalid):
    """A feature has too few examples to explain or to score."""

    kind = "not_enough_examples"


def error_kind(exc: BaseException) -> str:
    """The stored kind of an exception (``internal`` for anything the pipeline did not anticipate)."""
    return getattr(exc, "kind", None) or "internal"
