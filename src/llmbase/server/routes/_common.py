"""Shared pieces of the /v1 routers: pagination parameters and pages, error responses for
the OpenAPI document."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from pydantic import BaseModel

from ...errors import ValidationError
from ...stores._common import Page as SdkPage

T = TypeVar("T")

__all__ = ["ERRORS", "Cursor", "Limit", "page", "paginate"]

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The one error format: `{"error": {"code", "message", "field", ...}}`."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": ErrorBody}


#: Error responses every authenticated endpoint may give (docs/http.md).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Bad request"),
    401: _error("Missing, invalid or revoked API key"),
    402: _error("A hard budget refused the call"),
    403: _error("The API key lacks the scope"),
    404: _error("Not found (or another tenant's: the two are indistinguishable)"),
    409: _error("Conflict"),
    413: _error("Request body over the limit"),
    422: _error("Invalid input; `field` names it"),
    429: _error("Rate limited"),
}


def page(p: SdkPage[Any]) -> dict[str, Any]:
    """An SDK Page as the API's page."""
    return {"items": list(p.items), "next_cursor": p.next_cursor}


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"==").decode("ascii")
        if not raw.startswith("o:"):
            raise ValueError(cursor)
        n = int(raw[2:])
    except (ValueError, UnicodeError, binascii.Error):
        raise ValidationError("invalid cursor", field="cursor") from None
    if n < 0:
        raise ValidationError("invalid cursor", field="cursor")
    return n


def paginate(items: Sequence[T], limit: int, cursor: str | None) -> dict[str, Any]:
    """A page of a short list the SDK returns whole (collections, keys, limits)."""
    start = _offset(cursor)
    chunk = list(items[start : start + limit])
    end = start + len(chunk)
    nxt = None
    if end < len(items):
        nxt = base64.urlsafe_b64encode(f"o:{end}".encode("ascii")).decode("ascii").rstrip("=")
    return {"items": chunk, "next_cursor": nxt}
