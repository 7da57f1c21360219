"""Input checks of the limits API: bad input is a ValidationError naming the field."""

from __future__ import annotations

import math
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from ..errors import ValidationError

__all__ = ["amount", "choice", "flag", "money", "optional_id", "positive_int", "required_id", "ttl"]

MAX_LIMIT = 1_000_000_000_000_000
MAX_USD = Decimal(1_000_000_000)
_QUANTUM = Decimal("1e-10")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any, field: str, maximum: int = MAX_LIMIT) -> int:
    if not _is_int(value) or not 1 <= value <= maximum:
        raise ValidationError(f"must be an integer from 1 to {maximum}", field=field)
    return int(value)


def amount(value: Any, field: str) -> int:
    """A non-negative count (requests or tokens of one call)."""
    if not _is_int(value) or not 0 <= value <= MAX_LIMIT:
        raise ValidationError(f"must be an integer from 0 to {MAX_LIMIT}", field=field)
    return int(value)


def ttl(value: Any, field: str = "ttl") -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError("must be a number of seconds", field=field)
    seconds = math.ceil(value)
    if not 1 <= seconds <= 7 * 86400:
        raise ValidationError("must be from 1 second to 7 days", field=field)
    return seconds


def choice(value: Any, field: str, options: Collection[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValidationError(f"must be one of {', '.join(sorted(options))}", field=field)
    return value


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("must be true or false", field=field)
    return value


def money(value: Any, field: str, *, allow_zero: bool = False) -> Decimal:
    """USD as a Decimal (int, Decimal, finite float or numeric string), > 0 (or >= 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValidationError("must be an amount in USD", field=field)
    try:
        d = Decimal(str(value)) if isinstance(value, float | str) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValidationError("must be an amount in USD", field=field) from None
    if not d.is_finite():
        raise ValidationError("must be a finite amount", field=field)
    if d < 0 or (d == 0 and not allow_zero):
        raise ValidationError("must be positive" if not allow_zero else "must be >= 0", field=field)
    if d > MAX_USD:
        raise ValidationError(f"must be at most {MAX_USD}", field=field)
    return d.quantize(_QUANTUM)


def optional_id(value: Any, field: str) -> UUID | None:
    if value is None:
        return None
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and "\x00" not in value:
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValidationError("not a valid id", field=field)


def required_id(value: Any, field: str) -> UUID:
    out = optional_id(value, field)
    if out is None:
        raise ValidationError("an id is required", field=field)
    return out
