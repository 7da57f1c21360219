"""Definitions of rate limits and budgets (set, list, get, delete) and budget usage, as plans."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql

from ..errors import NotFound, PermissionDenied, ValidationError
from ..stores._common import Ctx
from ..stores._plan import Plan, Query
from . import _validate as v
from ._types import Budget, BudgetUsage, RateLimit

__all__ = [
    "delete_budget",
    "delete_limit",
    "get_budget",
    "get_limit",
    "list_budgets",
    "list_limits",
    "set_budget",
    "set_limit",
    "usage",
]

METRICS = ("requests", "tokens")
WINDOWS = ("minute", "hour", "day")
MODES = ("soft", "hard")
_ZERO = "'00000000-0000-0000-0000-000000000000'::uuid"

_LIMIT_COLS = sql.SQL(
    'id, subject, user_id, api_key_id, per_user, metric, period AS "window", limit_value AS "limit",'
    " created_at, updated_at"
)
_BUDGET_COLS = sql.SQL("id, user_id, per_user, cap_usd, mode, unpriced_call_usd, created_at, updated_at")
_ZERO_SQL = sql.SQL(_ZERO)


def _tenant_wide(ctx: Ctx, what: str) -> None:
    ctx.scope.require_tenant()
    if ctx.scope.user_id is not None:
        raise PermissionDenied(f"{what} are managed in tenant-wide scope (client.tenant(...)), not a user's")


def resolve_user(ctx: Ctx, user: Any, field: str = "user") -> Plan[UUID | None]:
    """A user given as UUID, id string or external id -> its id in this tenant (NotFound)."""
    if user is None:
        return None
    if isinstance(user, UUID):
        return user
    if not isinstance(user, str) or not 1 <= len(user) <= 256 or "\x00" in user:
        raise ValidationError("must be a user id or external id", field=field)
    try:
        return UUID(user)
    except ValueError:
        pass
    row = yield Query(
        "SELECT id FROM llmbase.users WHERE external_id = %s",
        (user,),
        fetch="one",
        tuples=True,
        not_found=NotFound("user", user),
    )
    return row[0]  # type: ignore[no-any-return]


# -- rate limits ---------------------------------------------------------------------------
def set_limit(
    ctx: Ctx,
    limit: int,
    *,
    metric: str = "requests",
    window: str = "minute",
    user: UUID | str | None = None,
    api_key: UUID | str | None = None,
    per_user: bool = False,
) -> Plan[RateLimit]:
    """Create or change the limit of (subject, metric, window): `limit` per window."""
    _tenant_wide(ctx, "rate limits")
    value = v.positive_int(limit, "limit")
    metric = v.choice(metric, "metric", METRICS)
    window = v.choice(window, "window", WINDOWS)
    per_user = v.flag(per_user, "per_user")
    key = v.optional_id(api_key, "api_key")
    if user is not None and key is not None:
        raise ValidationError("give a user or an API key, not both", field="api_key")
    if per_user and (user is not None or key is not None):
        raise ValidationError("per_user applies to tenant limits only", field="per_user")
    uid = yield from resolve_user(ctx, user)
    subject = "user" if uid is not None else "api_key" if key is not None else "tenant"
    missing = NotFound("user", uid) if uid is not None else NotFound("api key", key)
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.rate_limits AS l"
            " (subject, user_id, api_key_id, per_user, metric, period, limit_value)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant_id, subject, (coalesce(user_id, {zero})),"
            " (coalesce(api_key_id, {zero})), per_user, metric, period)"
            " DO UPDATE SET limit_value = EXCLUDED.limit_value"
            " RETURNING {cols}"
        ).format(zero=_ZERO_SQL, cols=_LIMIT_COLS),
        (subject, uid, key, per_user, metric, window, value),
        fetch="one",
        row=RateLimit,
        fk_not_found=missing,
    )
    return row  # type: ignore[no-any-return]


def list_limits(ctx: Ctx) -> Plan[list[RateLimit]]:
    """The limits visible in this scope (a user's scope: the tenant's and its own)."""
    ctx.scope.require_tenant()
    rows = yield Query(
        sql.SQL("SELECT {} FROM llmbase.rate_limits ORDER BY created_at, id").format(_LIMIT_COLS),
        row=RateLimit,
    )
    return rows  # type: ignore[no-any-return]


def get_limit(ctx: Ctx, limit_id: UUID | str) -> Plan[RateLimit]:
    ctx.scope.require_tenant()
    lid = v.optional_id(limit_id, "limit_id")
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.rate_limits WHERE id = %s").format(_LIMIT_COLS),
        (lid,),
        fetch="one",
        row=RateLimit,
        not_found=NotFound("rate limit", limit_id),
    )
    return row  # type: ignore[no-any-return]


def delete_limit(ctx: Ctx, limit_id: UUID | str) -> Plan[None]:
    """Delete a limit (and its counters). Another tenant's id is not found."""
    _tenant_wide(ctx, "rate limits")
    lid = v.optional_id(limit_id, "limit_id")
    yield Query(
        "DELETE FROM llmbase.rate_limits WHERE id = %s RETURNING id",
        (lid,),
        fetch="one",
        not_found=NotFound("rate limit", limit_id),
    )


# -- budgets ---------------------------------------------------------------------------------
def set_budget(
    ctx: Ctx,
    cap_usd: Decimal | int | float | str,
    *,
    user: UUID | str | None = None,
    per_user: bool = False,
    mode: str = "hard",
    unpriced_call_usd: Decimal | int | float | str | None = None,
) -> Plan[Budget]:
    """Create or change the monthly budget of the tenant, a user, or each user (per_user)."""
    _tenant_wide(ctx, "budgets")
    cap = v.money(cap_usd, "cap_usd")
    mode = v.choice(mode, "mode", MODES)
    per_user = v.flag(per_user, "per_user")
    unpriced = (
        None
        if unpriced_call_usd is None
        else v.money(unpriced_call_usd, "unpriced_call_usd", allow_zero=True)
    )
    if per_user and user is not None:
        raise ValidationError("per_user applies to tenant budgets only", field="per_user")
    uid = yield from resolve_user(ctx, user)
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.budgets AS b (user_id, per_user, cap_usd, mode, unpriced_call_usd)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant_id, (coalesce(user_id, {zero})), per_user)"
            " DO UPDATE SET cap_usd = EXCLUDED.cap_usd, mode = EXCLUDED.mode,"
            " unpriced_call_usd = EXCLUDED.unpriced_call_usd"
            " RETURNING {cols}"
        ).format(zero=_ZERO_SQL, cols=_BUDGET_COLS),
        (uid, per_user, cap, mode, unpriced),
        fetch="one",
        row=Budget,
        fk_not_found=NotFound("user", uid),
    )
    return row  # type: ignore[no-any-return]


def list_budgets(ctx: Ctx) -> Plan[list[Budget]]:
    ctx.scope.require_tenant()
    rows = yield Query(
        sql.SQL("SELECT {} FROM llmbase.budgets ORDER BY created_at, id").format(_BUDGET_COLS), row=Budget
    )
    return rows  # type: ignore[no-any-return]


def get_budget(ctx: Ctx, budget_id: UUID | str) -> Plan[Budget]:
    ctx.scope.require_tenant()
    bid = v.optional_id(budget_id, "budget_id")
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.budgets WHERE id = %s").format(_BUDGET_COLS),
        (bid,),
        fetch="one",
        row=Budget,
        not_found=NotFound("budget", budget_id),
    )
    return row  # type: ignore[no-any-return]


def delete_budget(ctx: Ctx, budget_id: UUID | str) -> Plan[None]:
    _tenant_wide(ctx, "budgets")
    bid = v.optional_id(budget_id, "budget_id")
    yield Query(
        "DELETE FROM llmbase.budgets WHERE id = %s RETURNING id",
        (bid,),
        fetch="one",
        not_found=NotFound("budget", budget_id),
    )


def usage(ctx: Ctx, *, all_months: bool = False) -> Plan[list[BudgetUsage]]:
    """Spent and reserved per budget and subject, this month (UTC) or every month kept."""
    ctx.scope.require_tenant()
    rows = yield Query(
        "SELECT p.budget_id, p.subject_key, p.period_start, b.mode, b.cap_usd, p.spent_usd, p.reserved_usd"
        " FROM llmbase.budget_periods p"
        " JOIN llmbase.budgets b ON b.tenant_id = p.tenant_id AND b.id = p.budget_id"
        " WHERE %s OR p.period_start = date_trunc('month', now(), 'UTC')::date"
        " ORDER BY p.period_start DESC, p.budget_id, p.subject_key",
        (all_months,),
        row=BudgetUsage,
    )
    return rows  # type: ignore[no-any-return]
