"""Domain errors. Code below ``server/`` raises these; the server maps each to its HTTP status with
``{"detail": message}``. Messages say what to change."""
from __future__ import annotations


class WorkbenchError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(WorkbenchError):
    status_code = 400


class NoModelError(WorkbenchError):
    status_code = 400

    def __init__(self, detail: str = "no model is loaded; POST /api/model {\"name\": \"default\"} first") -> None:
        super().__init__(detail)


class NotFound(WorkbenchError):
    status_code = 404


class Conflict(WorkbenchError):
    status_code = 409


class PayloadTooLarge(WorkbenchError):
    status_code = 413


class Invalid(WorkbenchError):
    status_code = 422


class Overloaded(WorkbenchError):
    status_code = 503
