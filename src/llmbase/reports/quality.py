"""Quality reports: error rate and latency (percentiles from the rollups' histograms) by
model and type, and the slowest calls (from the request log itself)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import sql

from .. import histogram
from ..stores._common import Ctx, check_limit
from ..stores._plan import Plan, Query
from ._filters import Where, resolve, rollup_source
from ._time import When
from .rows import ErrorRate, Latency, SlowRequest

__all__ = ["dense_histogram", "error_rate", "latency", "slowest"]

_ERRORS = """
SELECT nullif(model, '') AS model, request_type, sum(requests)::bigint AS requests,
       sum(errors)::bigint AS errors,
       (100.0 * sum(errors) / nullif(sum(requests), 0))::float8 AS error_rate_pct
  FROM {source}
 GROUP BY model, request_type
HAVING sum(requests) > 0
 ORDER BY error_rate_pct DESC, requests DESC, model, request_type"""

# Histograms are summed in SQL, element by element, in the same pass as the counters: one
# sum(latency_hist[i]) per bucket. (Twice as fast as unnest WITH ORDINALITY + GROUP BY on
# the benchmark's 33k day rows, and far faster than the llmbase.hist_sum aggregate.)
_HIST_SUMS = sql.SQL(", ").join(
    sql.SQL("sum(latency_hist[{}])").format(sql.Literal(i)) for i in range(1, histogram.BUCKETS + 1)
)
_LATENCY = """
SELECT request_type, model, sum(requests)::bigint AS requests,
       sum(tokens_total)::bigint AS tokens_total, sum(latency_count)::bigint AS latency_count,
       sum(latency_sum_ms) AS latency_sum_ms, max(latency_max_ms) AS latency_max_ms,
       ARRAY[{sums}] AS hist
  FROM {source}
 GROUP BY request_type, model
HAVING sum(requests) > 0
 ORDER BY request_type, sum(latency_sum_ms) / nullif(sum(latency_count), 0) DESC NULLS LAST, model"""

# The index requests_slowest (tenant_id, latency_ms DESC NULLS LAST) answers this per tenant.
_SLOWEST = (
    "SELECT id, tenant_id, created_at, user_id, request_type, provider, model, status, latency_ms,"
    " ttft_ms, tokens_total, cost_usd, conversation_id, run_id, iteration"
    " FROM llmbase.requests AS q{where}"
    " ORDER BY q.latency_ms DESC NULLS LAST, q.id LIMIT %s"
)
# Operator scope across tenants: the top calls of each tenant (one index scan each), merged.
_SLOWEST_ALL = (
    "SELECT s.* FROM llmbase.tenants AS t CROSS JOIN LATERAL ({inner}) AS s"
    " ORDER BY s.latency_ms DESC NULLS LAST, s.id LIMIT %s"
)


def dense_histogram(sums: Sequence[Any] | None, count: int) -> list[int]:
    """A histogram from per-bucket sums (NULL past every array's end). The writer and
    rebuild_rollups count only calls with a latency; should a histogram hold more than
    `count` (a tool that filed calls without a latency in bucket 0), the excess is taken
    back out of bucket 0 so it cannot pull the percentiles down."""
    dense = [int(c) if c is not None else 0 for c in sums or ()]
    while dense and dense[-1] == 0:
        dense.pop()
    excess = sum(dense) - count
    if excess > 0 and dense:
        dense[0] -= min(excess, dense[0])
    return dense


def _latency_row(r: dict[str, Any]) -> Latency:
    n = r["latency_count"]
    hist = dense_histogram(r["hist"], n)
    requests = r["requests"]
    return Latency(
        request_type=r["request_type"],
        model=r["model"] or None,
        requests=requests,
        latency_count=n,
        mean_ms=r["latency_sum_ms"] / n if n else None,
        p50_ms=histogram.quantile(hist, 0.50),
        p95_ms=histogram.quantile(hist, 0.95),
        p99_ms=histogram.quantile(hist, 0.99),
        max_ms=r["latency_max_ms"] if n else None,
        avg_tokens=r["tokens_total"] / requests if requests else None,
    )


def error_rate(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
) -> Plan[list[ErrorRate]]:
    """Requests, errors and error rate (%) per model and request type, worst first."""
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    source, params = rollup_source(span, ("model", "request_type", "requests", "errors"))
    rows: list[ErrorRate] = yield Query(sql.SQL(_ERRORS).format(source=source), params, row=ErrorRate)
    return rows


def latency(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
) -> Plan[list[Latency]]:
    """Mean, p50/p95/p99 and max latency and mean tokens per request type and model."""
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    cols = (
        "request_type",
        "model",
        "requests",
        "tokens_total",
        "latency_count",
        "latency_sum_ms",
        "latency_max_ms",
        "latency_hist",
    )
    source, params = rollup_source(span, cols)
    rows: list[dict[str, Any]] = yield Query(sql.SQL(_LATENCY).format(sums=_HIST_SUMS, source=source), params)
    return [_latency_row(r) for r in rows]


def slowest(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    user: UUID | str | None = None,
    request_type: str | None = None,
    tenant: UUID | str | None = None,
    limit: int = 10,
) -> Plan[list[SlowRequest]]:
    """The slowest calls in a time range, slowest first (exact, from the request log)."""
    span = yield from resolve(
        ctx, since=since, until=until, tenant=tenant, user=user, model=model, request_type=request_type
    )
    n = check_limit(limit)
    where = Where()
    if span.tenant_id is None:
        where.add("q.tenant_id = t.id")
    where.span(span, alias="q", time_column="created_at").add("q.latency_ms IS NOT NULL")
    inner = sql.SQL(_SLOWEST).format(where=where.clause())
    if span.tenant_id is None:
        q: sql.Composable = sql.SQL(_SLOWEST_ALL).format(inner=inner)
        params: list[Any] = [*where.params, n, n]
    else:
        q, params = inner, [*where.params, n]
    rows: list[SlowRequest] = yield Query(q, params, row=SlowRequest)
    return rows
