"""Errors the case core raises; the web layer maps each to its HTTP status."""

from __future__ import annotations

from pydantic import ValidationError


class CaseError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **detail):
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(CaseError):
    status_code = 404
    code = "not_found"


class Forbidden(CaseError):
    status_code = 403
    code = "forbidden"


class IllegalTransition(CaseError):
    """The move is not allowed from the case's current state."""

    status_code = 409
    code = "illegal_transition"


class Conflict(CaseError):
    """Someone else changed the case first."""

    status_code = 409
    code = "conflict"


class InvalidInput(CaseError):
    status_code = 422
    code = "invalid"


def invalid_from(exc: ValidationError) -> InvalidInput:
    """A pydantic failure as a 422 that names each field."""
    errors = [
        {"field": ".".join(str(x) for x in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return InvalidInput("请求参数有误", errors=errors)
