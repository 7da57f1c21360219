"""Shared store vocabulary: the context a plan runs in, pages and cursors, id parsing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from ..config import Settings
from ..db import Scope
from ..errors import ValidationError

__all__ = ["Ctx", "Page", "decode_cursor", "encode_cursor", "parse_id"]

T = TypeVar("T")


@dataclass(frozen=True)
class Ctx:
    """What a plan may know: who it acts for and the configured limits."""

    scope: Scope
    settings: Settings


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results; pass `next_cursor` back to get the next one (None: the end)."""

    items: Sequence[T]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def encode_cursor(at: datetime, ident: UUID) -> str:
    raw = json.dumps([at.isoformat(), str(ident)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ident = json.loads(raw)
        return datetime.fromisoformat(at), UUID(ident)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ValidationError("malformed cursor", field="cursor") from exc


def parse_id(value: UUID | str, *, field: str = "id") -> UUID:
    """Accept a UUID or its string form; anything else is a validation error."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, AttributeError) as exc:
        raise ValidationError("not a valid id", field=field) from exc


def check_limit(limit: int, maximum: int = 1000) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise ValidationError(f"must be an integer from 1 to {maximum}", field="limit")
    return limit
