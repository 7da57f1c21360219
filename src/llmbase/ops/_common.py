"""What every operations module shares: the operator connection, time arguments, progress."""

from __future__ import annotations

import calendar
import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

import psycopg

from ..db import Database, operator_connection
from ..errors import NotFound, ValidationError
from ..reports._time import parse_when

if TYPE_CHECKING:
    from ..client import AsyncLLMBase, LLMBase

__all__ = ["ADMIN_SQL", "Progress", "Target", "admin", "connect", "parse_cutoff", "resolve_tenant"]

#: What an operations function accepts: a URL, an open connection (left open), a Database,
#: or a client (its database). Operations always act as the schema owner in operator scope.
Target: TypeAlias = "str | psycopg.Connection[Any] | Database | LLMBase | AsyncLLMBase"

#: progress(done, total, label): called as work advances.
Progress = Callable[[int, int, str], None]

ADMIN_SQL = "SELECT set_config('llmbase.admin', 'on', true)"


def _url_of(target: Any) -> str | psycopg.Connection[Any]:
    if isinstance(target, str | psycopg.Connection):
        return target
    if isinstance(target, Database):
        return target.url
    db = getattr(target, "database", None)
    if isinstance(db, Database):
        return db.url
    raise ValidationError(
        "expected a URL, a psycopg connection, a Database or an llmbase client", field="target"
    )


@contextlib.contextmanager
def connect(target: Target) -> Iterator[psycopg.Connection[Any]]:
    """The schema owner's connection for `target` (opened and closed here, unless given)."""
    url = _url_of(target)
    db = target if isinstance(target, Database) else getattr(target, "database", None)
    actor = db.settings.actor if isinstance(db, Database) else None
    with operator_connection(url) as conn:
        if actor and isinstance(url, str):  # our own connection: name the actor for the audit log
            conn.execute("SELECT set_config('llmbase.actor', %s, false)", (actor,))
            conn.commit()
        yield conn


def admin(conn: psycopg.Connection[Any]) -> None:
    """Enter operator scope for the current transaction."""
    conn.execute(ADMIN_SQL)


_MONTHS = re.compile(r"^\s*(\d+)\s*(mo|mon|month|months)\s*(?:ago)?\s*$", re.I)
_YEARS = re.compile(r"^\s*(\d+)\s*(y|yr|year|years)\s*(?:ago)?\s*$", re.I)
_DAYS = re.compile(r"^\s*(\d+)\s*(days?|weeks?|hours?)\s*(?:ago)?\s*$", re.I)


def _months_back(ref: datetime, months: int) -> datetime:
    y, m = divmod(ref.year * 12 + (ref.month - 1) - months, 12)
    day = min(ref.day, calendar.monthrange(y, m + 1)[1])
    return ref.replace(year=y, month=m + 1, day=day)


def parse_cutoff(value: Any, *, field: str = "older_than", now: datetime | None = None) -> datetime:
    """A cutoff in the past: '6months' / '6mo' (calendar months), '1y' / '2years' (calendar
    years), '90d', '12w', '24h', '30 days', a timedelta, a date/datetime or an ISO string."""
    ref = (now or datetime.now(UTC)).astimezone(UTC)
    if isinstance(value, bool) or value is None:
        raise ValidationError("a cutoff is required (6months, 90d, or a date)", field=field)
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError("must not contain NUL characters", field=field)
        if m := _MONTHS.match(value):
            n = int(m.group(1))
            if n <= 0 or n > 1200:
                raise ValidationError("months must be 1..1200", field=field)
            return _months_back(ref, n)
        if m := _YEARS.match(value):
            n = int(m.group(1))
            if n <= 0 or n > 100:
                raise ValidationError("years must be 1..100", field=field)
            return _months_back(ref, 12 * n)
        if m := _DAYS.match(value):
            n, unit = int(m.group(1)), m.group(2).lower()
            if n <= 0:
                raise ValidationError("must be positive", field=field)
            hours = {"d": 24, "w": 7 * 24, "h": 1}[unit[0]]
            return ref - timedelta(hours=n * hours)
    if isinstance(value, timedelta) and value <= timedelta(0):
        raise ValidationError("must be positive", field=field)
    cutoff = parse_when(value, field=field, now=ref)
    if cutoff is None:  # pragma: no cover - parse_when returns None only for None
        raise ValidationError("a cutoff is required", field=field)
    if cutoff > ref:
        raise ValidationError("the cutoff lies in the future", field=field)
    return cutoff


def parse_uuid(value: Any, *, field: str) -> UUID | None:
    """A UUID from a UUID or its text; None when the text is not a UUID (maybe a slug)."""
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 256:
        raise ValidationError("expected an id (UUID) or a slug / external id", field=field)
    try:
        return UUID(value)
    except ValueError:
        return None


def resolve_tenant(conn: psycopg.Connection[Any], tenant: UUID | str) -> UUID:
    """A tenant's id from its id or slug (operator scope must be active)."""
    tid = parse_uuid(tenant, field="tenant")
    if tid is not None:
        row = conn.execute("SELECT id FROM llmbase.tenants WHERE id = %s", (tid,)).fetchone()
    else:
        row = conn.execute("SELECT id FROM llmbase.tenants WHERE slug = %s", (tenant,)).fetchone()
    if row is None:
        raise NotFound("tenant", tenant)
    return row[0]  # type: ignore[no-any-return]
