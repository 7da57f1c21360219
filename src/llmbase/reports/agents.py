"""Agent-run reports (seed 004): statistics per iteration number with the median, iteration
timing per hour, and completed conversations. Exact, from runs, iterations and conversations."""

from __future__ import annotations

from uuid import UUID

from psycopg import sql

from ..stores._common import Ctx, check_limit
from ..stores._plan import Plan, Query
from ._filters import Span, Where, resolve
from ._time import When
from .rows import Completion, IterationStats, IterationTrend

__all__ = ["completions", "iteration_trends", "iterations"]

_ITERATIONS = """
SELECT i.iteration, count(*)::int AS samples,
       avg(i.api_ms) AS avg_api_ms, min(i.api_ms) AS min_api_ms, max(i.api_ms) AS max_api_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY i.api_ms) AS median_api_ms,
       avg(i.tool_ms) AS avg_tool_ms, avg(i.total_ms) AS avg_total_ms
  FROM llmbase.run_iterations AS i{join}{where}
 GROUP BY i.iteration
HAVING count(*) >= %s
 ORDER BY i.iteration"""

_TRENDS = """
SELECT date_trunc('hour', i.started_at, 'UTC') AS hour, count(*)::int AS iterations,
       avg(i.api_ms) AS avg_api_ms, avg(i.tool_ms) AS avg_tool_ms, avg(i.total_ms) AS avg_total_ms
  FROM llmbase.run_iterations AS i{join}{where}
 GROUP BY 1
 ORDER BY 1 DESC"""

_JOIN_RUNS = " JOIN llmbase.runs AS r ON r.tenant_id = i.tenant_id AND r.id = i.run_id"

_COMPLETIONS = """
SELECT c.id AS conversation_id, c.tenant_id, c.user_id, c.title, c.total_iterations, c.total_time_ms,
       c.total_time_ms::float8 / nullif(c.total_iterations, 0) AS avg_ms_per_iteration, c.completed_at
  FROM llmbase.conversations AS c{where}
 ORDER BY c.completed_at DESC, c.id DESC
 LIMIT %s"""


def _iteration_where(span: Span, run_name: str | None) -> tuple[sql.Composable, Where]:
    where = Where()
    if span.tenant_id is not None:
        where.add("i.tenant_id = %s", span.tenant_id)
    if span.since is not None:
        where.add("i.started_at >= %s", span.since)
    if span.until is not None:
        where.add("i.started_at < %s", span.until)
    join = sql.SQL("")
    if span.user_ids is not None or run_name is not None:
        join = sql.SQL(_JOIN_RUNS)
        if span.user_ids is not None:
            where.add("r.user_id = ANY(%s)", list(span.user_ids))
        if run_name is not None:
            where.add("r.name = %s", run_name)
    return join, where


def iterations(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    user: UUID | str | None = None,
    tenant: UUID | str | None = None,
    run_name: str | None = None,
    min_samples: int = 1,
) -> Plan[list[IterationStats]]:
    """Per iteration number: samples, mean/min/max/median API time, mean tool and total
    time. `min_samples=3` keeps only well-sampled iterations (seed 004's HAVING)."""
    span = yield from resolve(ctx, since=since, until=until, tenant=tenant, user=user)
    n = check_limit(min_samples, 1_000_000_000)
    join, where = _iteration_where(span, run_name)
    q = sql.SQL(_ITERATIONS).format(join=join, where=where.clause())
    rows: list[IterationStats] = yield Query(q, (*where.params, n), row=IterationStats)
    return rows


def iteration_trends(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    user: UUID | str | None = None,
    tenant: UUID | str | None = None,
    run_name: str | None = None,
) -> Plan[list[IterationTrend]]:
    """Iterations and their mean API, tool and total time per hour, newest first."""
    span = yield from resolve(ctx, since=since, until=until, tenant=tenant, user=user)
    join, where = _iteration_where(span, run_name)
    q = sql.SQL(_TRENDS).format(join=join, where=where.clause())
    rows: list[IterationTrend] = yield Query(q, where.params, row=IterationTrend)
    return rows


def completions(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    user: UUID | str | None = None,
    tenant: UUID | str | None = None,
    limit: int = 10,
) -> Plan[list[Completion]]:
    """Completed conversations, latest first: iterations, total time, time per iteration."""
    span = yield from resolve(ctx, since=since, until=until, tenant=tenant, user=user)
    where = Where().add("c.completed_at IS NOT NULL")
    if span.tenant_id is not None:
        where.add("c.tenant_id = %s", span.tenant_id)
    if span.user_ids is not None:
        where.add("c.user_id = ANY(%s)", list(span.user_ids))
    if span.since is not None:
        where.add("c.completed_at >= %s", span.since)
    if span.until is not None:
        where.add("c.completed_at < %s", span.until)
    q = sql.SQL(_COMPLETIONS).format(where=where.clause())
    rows: list[Completion] = yield Query(q, (*where.params, check_limit(limit)), row=Completion)
    return rows
