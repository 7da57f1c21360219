"""Time arguments of reports and retention: ISO dates, relative forms ("7d", "24h"), UTC.

Reports read rollups with hour resolution, so their ranges are widened to whole hours
(`since` down, `until` up); day-grain rollups serve every whole UTC day inside a range.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from ..errors import ValidationError

__all__ = ["When", "ceil_day", "ceil_hour", "floor_day", "floor_hour", "parse_duration", "parse_when"]

#: What a `since=` / `until=` argument may be.
When = datetime | date | timedelta | str

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w|y)\s*(?:ago)?\s*$", re.I)


def parse_duration(value: str | timedelta, *, field: str = "duration") -> timedelta:
    """'90d', '24h', '30m', '2w', '1y' (365 days), '45s' (or a timedelta) as a positive timedelta."""
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValidationError("must be positive", field=field)
        return value
    m = _RELATIVE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValidationError("expected a duration like 90d, 24h, 30m, 2w", field=field)
    unit = m.group(2).lower()
    seconds = float(m.group(1)) * _UNITS["m" if unit == "min" else unit]
    if seconds <= 0:
        raise ValidationError("must be positive", field=field)
    return timedelta(seconds=seconds)


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_when(value: When | None, *, field: str = "since", now: datetime | None = None) -> datetime | None:
    """A point in time (UTC) from a datetime, a date (its UTC midnight), a timedelta or
    relative string (that long before now: '7d', '24h') or an ISO 8601 date/datetime.
    Naive datetimes are taken as UTC."""
    if value is None:
        return None
    ref = _aware(now) if now is not None else datetime.now(UTC)
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, timedelta):
        return ref - value
    if not isinstance(value, str):
        raise ValidationError("expected a datetime, date, duration or ISO string", field=field)
    text = value.strip()
    if text.lower() == "now":
        return ref
    if text.lower() == "today":
        return floor_day(ref)
    if _RELATIVE.match(text):
        return ref - parse_duration(text, field=field)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(
            "expected an ISO date/datetime (2025-01-31, 2025-01-31T12:00Z) or 7d / 24h", field=field
        ) from exc
    return _aware(parsed)


def floor_hour(dt: datetime) -> datetime:
    return _aware(dt).replace(minute=0, second=0, microsecond=0)


def ceil_hour(dt: datetime) -> datetime:
    f = floor_hour(dt)
    return f if f == _aware(dt) else f + timedelta(hours=1)


def floor_day(dt: datetime) -> datetime:
    return floor_hour(dt).replace(hour=0)


def ceil_day(dt: datetime) -> datetime:
    f = floor_day(dt)
    return f if f == _aware(dt) else f + timedelta(days=1)
