"""Usage reports from the rollups: cost by user, daily, hourly, monthly, today, one user's
usage statistics (seed 001's get_usage_stats)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from psycopg import sql

from ..errors import TenantMissing, ValidationError
from ..stores._common import Ctx, check_limit
from ..stores._plan import Plan, Query
from ._filters import NO_USER, Period, Span, resolve, rollup_source
from ._time import When, floor_day
from .rows import Breakdown, PeriodUsage, UserCost, UserUsage

__all__ = ["cost_by_user", "daily", "hourly", "monthly", "today", "user_usage"]

_COST_BY_USER = """
WITH g AS (
    SELECT tenant_id, user_id, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
           sum(tokens_total)::bigint AS tokens_total, sum(cost_usd) AS cost_usd,
           sum(cost_unknown)::bigint AS cost_unknown
      FROM {source}
     GROUP BY tenant_id, user_id)
SELECT g.tenant_id, nullif(g.user_id, %s) AS user_id, u.external_id, g.requests, g.errors,
       g.tokens_total, g.cost_usd, g.cost_unknown
  FROM g LEFT JOIN llmbase.users u ON u.tenant_id = g.tenant_id AND u.id = g.user_id
 ORDER BY g.cost_usd DESC, g.requests DESC, g.tenant_id, g.user_id
 LIMIT %s"""

# Usage per hour or day; `active_users` counts users (not the no-user bucket) with calls.
# Rows of the period's own grain arrive in (start, user_id) order from the primary key, so
# the distinct count needs no sort (the newest-first order is applied outside, so the
# planner keeps the forward scan).
_PERIODS = """
SELECT * FROM (
    SELECT start, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
           sum(tokens_prompt)::bigint AS tokens_prompt,
           sum(tokens_completion)::bigint AS tokens_completion,
           sum(tokens_total)::bigint AS tokens_total, sum(cost_usd) AS cost_usd,
           count(DISTINCT user_id) FILTER (WHERE user_id <> %s AND requests > 0)::int AS active_users,
           sum(latency_sum_ms) / nullif(sum(latency_count), 0) AS mean_latency_ms
      FROM {source}
     GROUP BY start) AS p
 ORDER BY start DESC"""

# Usage per month: per user first, then per month (cheaper than a distinct count).
_MONTHS = """
SELECT start, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
       sum(tokens_prompt)::bigint AS tokens_prompt, sum(tokens_completion)::bigint AS tokens_completion,
       sum(tokens_total)::bigint AS tokens_total, sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE user_id <> %s AND requests > 0)::int AS active_users,
       sum(latency_sum_ms) / nullif(sum(latency_count), 0) AS mean_latency_ms
  FROM (SELECT start, user_id, sum(requests) AS requests, sum(errors) AS errors,
               sum(tokens_prompt) AS tokens_prompt, sum(tokens_completion) AS tokens_completion,
               sum(tokens_total) AS tokens_total, sum(cost_usd) AS cost_usd,
               sum(latency_count) AS latency_count, sum(latency_sum_ms) AS latency_sum_ms
          FROM {source}
         GROUP BY start, user_id) AS m
 GROUP BY start
 ORDER BY start DESC"""

_TOTAL = """
SELECT %s::timestamptz AS start,
       coalesce(sum(requests), 0)::bigint AS requests, coalesce(sum(errors), 0)::bigint AS errors,
       coalesce(sum(tokens_prompt), 0)::bigint AS tokens_prompt,
       coalesce(sum(tokens_completion), 0)::bigint AS tokens_completion,
       coalesce(sum(tokens_total), 0)::bigint AS tokens_total, coalesce(sum(cost_usd), 0) AS cost_usd,
       count(DISTINCT user_id) FILTER (WHERE user_id <> %s AND requests > 0)::int AS active_users,
       sum(latency_sum_ms) / nullif(sum(latency_count), 0) AS mean_latency_ms
  FROM {source}"""

# get_usage_stats: totals, by request type and by model in one pass (grouping sets).
_USER_USAGE = """
SELECT GROUPING(request_type) AS no_type, GROUPING(model) AS no_model, request_type, model,
       coalesce(sum(requests), 0)::bigint AS requests, coalesce(sum(errors), 0)::bigint AS errors,
       coalesce(sum(tokens_prompt), 0)::bigint AS tokens_prompt,
       coalesce(sum(tokens_completion), 0)::bigint AS tokens_completion,
       coalesce(sum(tokens_total), 0)::bigint AS tokens_total, coalesce(sum(cost_usd), 0) AS cost_usd,
       sum(latency_sum_ms) / nullif(sum(latency_count), 0) AS mean_latency_ms
  FROM {source}
 GROUP BY GROUPING SETS ((), (request_type), (model))
 ORDER BY 1, 2, cost_usd DESC, requests DESC, request_type, model"""

_USAGE_COLS = (
    "bucket_start",
    "user_id",
    "requests",
    "errors",
    "tokens_prompt",
    "tokens_completion",
    "tokens_total",
    "cost_usd",
    "latency_count",
    "latency_sum_ms",
)


def _query(
    template: LiteralString, span: Span, columns: tuple[str, ...], **kw: Any
) -> tuple[sql.Composable, list[Any]]:
    source, params = rollup_source(span, columns, **kw)
    return sql.SQL(template).format(source=source), params


def cost_by_user(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
    limit: int = 1000,
) -> Plan[list[UserCost]]:
    """Requests, tokens and cost per user, most expensive first (seed 000)."""
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    cols = ("tenant_id", "user_id", "requests", "errors", "tokens_total", "cost_usd", "cost_unknown")
    q, params = _query(_COST_BY_USER, span, cols)
    rows: list[UserCost] = yield Query(q, (*params, NO_USER, check_limit(limit, 100_000)), row=UserCost)
    return rows


def _periods(ctx: Ctx, period: Period, span: Span) -> Plan[list[PeriodUsage]]:
    source, params = rollup_source(
        span, _USAGE_COLS, grain="hour" if period == "hour" else None, period=period
    )
    template = _MONTHS if period == "month" else _PERIODS
    rows: list[PeriodUsage] = yield Query(
        sql.SQL(template).format(source=source), (NO_USER, *params), row=PeriodUsage
    )
    return rows


def daily(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
) -> Plan[list[PeriodUsage]]:
    """Usage and cost per UTC day, newest first (seed 000's daily usage and costs)."""
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    return (yield from _periods(ctx, "day", span))


def hourly(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
) -> Plan[list[PeriodUsage]]:
    """Usage, cost and mean latency per hour, newest first (hourly trends)."""
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    return (yield from _periods(ctx, "hour", span))


def monthly(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
) -> Plan[list[PeriodUsage]]:
    """Usage and cost per calendar month (UTC), newest first (seed 002's monthly summary)."""
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    return (yield from _periods(ctx, "month", span))


def today(
    ctx: Ctx,
    *,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
) -> Plan[PeriodUsage]:
    """The current UTC day so far (seed 002's current-day usage view)."""
    start = floor_day(datetime.now(UTC))
    span = yield from resolve(
        ctx, since=start, tenant=tenant, user=user, model=model, request_type=request_type
    )
    source, params = rollup_source(span, _USAGE_COLS)
    row: PeriodUsage = yield Query(
        sql.SQL(_TOTAL).format(source=source), (start, NO_USER, *params), fetch="one", row=PeriodUsage
    )
    return row


def _breakdown(r: dict[str, Any], key: str) -> Breakdown:
    value = r[key]
    return Breakdown(
        value or None, r["requests"], r["errors"], r["tokens_total"], r["cost_usd"], r["mean_latency_ms"]
    )


def user_usage(
    ctx: Ctx,
    user: UUID | str | None = None,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
) -> Plan[UserUsage]:
    """One user's totals, by request type and by model (seed 001's get_usage_stats).

    `user` defaults to the client's user; it may be an id or an external id."""
    if user is None and (ctx.scope.user_id is None or ctx.scope.admin):
        raise TenantMissing("user_usage needs a user: pass user= or use client.user(...)")
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    assert span.user_ids is not None
    if len(span.user_ids) != 1:
        raise ValidationError("matches users of several tenants: pass tenant=", field="user")
    uid = span.user_ids[0]
    names: list[tuple[str]] = yield Query(
        "SELECT external_id FROM llmbase.users WHERE id = %s", (uid,), tuples=True
    )
    cols = ("request_type", "model", *_USAGE_COLS[2:])
    q, params = _query(_USER_USAGE, span, cols)
    rows: list[dict[str, Any]] = yield Query(q, params)
    total = next(r for r in rows if r["no_type"] and r["no_model"])
    return UserUsage(
        user_id=uid,
        external_id=names[0][0] if names else None,
        since=span.since,
        until=span.until,
        requests=total["requests"],
        errors=total["errors"],
        tokens_prompt=total["tokens_prompt"],
        tokens_completion=total["tokens_completion"],
        tokens_total=total["tokens_total"],
        cost_usd=Decimal(total["cost_usd"]),
        mean_latency_ms=total["mean_latency_ms"],
        by_type=[_breakdown(r, "request_type") for r in rows if not r["no_type"]],
        by_model=[_breakdown(r, "model") for r in rows if not r["no_model"]],
    )
