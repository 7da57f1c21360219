"""One error format everywhere: `{"error": {"code", "message", "field"}}` with the HTTP status
of the SDK's exception (docs/http.md). Nothing reaches a client as an unformatted 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import BudgetExceeded, LLMBaseError, RateLimited, ValidationError

__all__ = ["error_body", "install_error_handlers"]

_log = logging.getLogger("llmbase.server")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _llmbase(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LLMBaseError)
    field = exc.field if isinstance(exc, ValidationError) else None
    message = exc.reason if isinstance(exc, ValidationError) else str(exc)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited | BudgetExceeded):
        extra["retry_after"] = exc.retry_after
        extra["remaining"] = str(exc.remaining) if exc.remaining is not None else None
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    status = exc.http_status
    if status >= 500 and exc.code not in ("database_unavailable",):
        _log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse(error_body(exc.code, message, field, **extra), status_code=status, headers=headers)


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return JSONResponse(
        error_body("validation_error", str(first.get("msg", "invalid request")), ".".join(loc) or None),
        status_code=422,
    )


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("%s %s failed", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LLMBaseError, _llmbase)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
