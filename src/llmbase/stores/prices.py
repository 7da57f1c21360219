"""Per-tenant model price overrides (USD per million tokens): set, get, list, delete.

An override wins over the genai-prices catalog when the request log prices a call
(llmbase.pricing). Provider '' matches calls of any provider; a provider-specific row
wins over it. Managing overrides needs the tenant-wide scope (not a user's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

from psycopg import sql

from .._sanitize import bounded_text
from ..errors import NotFound, ValidationError
from ..pricing import invalidate
from ._common import Ctx
from ._plan import Plan, Query

__all__ = ["ModelPrice"]


@dataclass(frozen=True)
class ModelPrice:
    tenant_id: UUID
    provider: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None
    per_request: Decimal
    created_at: datetime
    updated_at: datetime


_COLS = sql.SQL(
    "tenant_id, provider, model, input_per_mtok, output_per_mtok, cached_input_per_mtok,"
    " per_request, created_at, updated_at"
)


def _price(value: Decimal | float | int | str, field: str) -> Decimal:
    if isinstance(value, bool):
        raise ValidationError("must be a number", field=field)
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError("must be a number", field=field) from None
    if not d.is_finite() or d < 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise ValidationError("must be a finite number >= 0", field=field)
    if d >= Decimal(10) ** 10:
        raise ValidationError("must be below 1e10", field=field)
    return d


def _key(model: str, provider: str) -> tuple[str, str]:
    return (
        bounded_text(provider, field="provider", max_chars=100),
        bounded_text(model, field="model", max_chars=200),
    )


def set_(
    ctx: Ctx,
    model: str,
    *,
    input_per_mtok: Decimal | float | int | str,
    output_per_mtok: Decimal | float | int | str,
    cached_input_per_mtok: Decimal | float | int | str | None = None,
    per_request: Decimal | float | int | str = 0,
    provider: str = "",
) -> Plan[ModelPrice]:
    """Create or replace the tenant's price for `model` (and `provider`, '' = any)."""
    tid = ctx.scope.require_tenant()
    prov, name = _key(model, provider)
    if not name:
        raise ValidationError("must not be empty", field="model")
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.model_prices (provider, model, input_per_mtok, output_per_mtok,"
            " cached_input_per_mtok, per_request) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant_id, provider, model) DO UPDATE SET"
            " input_per_mtok = EXCLUDED.input_per_mtok, output_per_mtok = EXCLUDED.output_per_mtok,"
            " cached_input_per_mtok = EXCLUDED.cached_input_per_mtok, per_request = EXCLUDED.per_request"
            " RETURNING {}"
        ).format(_COLS),
        (
            prov,
            name,
            _price(input_per_mtok, "input_per_mtok"),
            _price(output_per_mtok, "output_per_mtok"),
            None if cached_input_per_mtok is None else _price(cached_input_per_mtok, "cached_input_per_mtok"),
            _price(per_request, "per_request"),
        ),
        fetch="one",
        row=ModelPrice,
    )
    invalidate(tid)
    return row  # type: ignore[no-any-return]


def get(ctx: Ctx, model: str, *, provider: str = "") -> Plan[ModelPrice]:
    ctx.scope.require_tenant()
    prov, name = _key(model, provider)
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.model_prices WHERE provider = %s AND model = %s").format(_COLS),
        (prov, name),
        fetch="one",
        row=ModelPrice,
        not_found=NotFound("model price", f"{prov}/{name}" if prov else name),
    )
    return row  # type: ignore[no-any-return]


def list_(ctx: Ctx) -> Plan[list[ModelPrice]]:
    ctx.scope.require_tenant()
    rows: list[ModelPrice] = yield Query(
        sql.SQL("SELECT {} FROM llmbase.model_prices ORDER BY model, provider").format(_COLS), row=ModelPrice
    )
    return rows


def delete(ctx: Ctx, model: str, *, provider: str = "") -> Plan[bool]:
    """Remove an override; True when one existed."""
    tid = ctx.scope.require_tenant()
    prov, name = _key(model, provider)
    n = yield Query(
        "DELETE FROM llmbase.model_prices WHERE provider = %s AND model = %s",
        (prov, name),
        fetch="rowcount",
    )
    invalidate(tid)
    return bool(n)
