"""The dashboard's own read plans (run in the caller's scope, under row-level security).

Aggregates read the rollups (one range scan of the tenant rollups per query, histograms
merged for p50/p95), so the overview costs the same at ten million calls as at ten
thousand. The request explorer pages the request log newest first by its primary key
(tenant_id, created_at, id); a request is fetched by (created_at, id) so one partition is
probed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from psycopg import sql

from ... import histogram
from ...errors import NotFound, ValidationError
from ...reports._filters import Span, Where, resolve, rollup_source
from ...reports._time import When, floor_day, floor_hour
from ...reports.quality import dense_histogram
from ...stores._common import Ctx, check_limit, decode_cursor, encode_cursor, parse_id
from ...stores._plan import Plan, Query

__all__ = [
    "STATUSES",
    "conversation_feedback",
    "facets",
    "overview",
    "request",
    "requests",
    "run",
    "runs",
    "top_users",
]

Period = Literal["hour", "day"]
STATUSES = ("success", "error", "timeout", "rate_limited", "cancelled")
REQUEST_TYPES = (
    "chat",
    "completion",
    "embedding",
    "transcription",
    "speech",
    "image",
    "moderation",
    "rerank",
    "other",
)

_HIST_SUMS = sql.SQL(", ").join(
    sql.SQL("sum(latency_hist[{}])").format(sql.Literal(i)) for i in range(1, histogram.BUCKETS + 1)
)
_METRICS = (
    "requests",
    "errors",
    "tokens_total",
    "cost_usd",
    "cost_unknown",
    "latency_count",
    "latency_sum_ms",
    "latency_hist",
)
# Counters and the merged histogram (one sum per bucket, as reports.quality does).
_SERIES = (
    "SELECT start, "
    "sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,"
    " sum(tokens_total)::bigint AS tokens_total, coalesce(sum(cost_usd), 0) AS cost_usd,"
    " sum(cost_unknown)::bigint AS cost_unknown, sum(latency_count)::bigint AS latency_count,"
    " sum(latency_sum_ms) AS latency_sum_ms, ARRAY[{sums}] AS hist"
    " FROM {source} GROUP BY start ORDER BY start"
)
_GROUPS = (
    "SELECT model, request_type, "
    "sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,"
    " sum(tokens_total)::bigint AS tokens_total, coalesce(sum(cost_usd), 0) AS cost_usd,"
    " sum(cost_unknown)::bigint AS cost_unknown, sum(latency_count)::bigint AS latency_count,"
    " sum(latency_sum_ms) AS latency_sum_ms, ARRAY[{sums}] AS hist"
    " FROM {source} GROUP BY model, request_type HAVING sum(requests) > 0"
)


def _stats(r: dict[str, Any], hist: Sequence[int] | None = None) -> dict[str, Any]:
    n = int(r["latency_count"] or 0)
    h = list(hist) if hist is not None else dense_histogram(r["hist"], n)
    return {
        "requests": int(r["requests"] or 0),
        "errors": int(r["errors"] or 0),
        "tokens": int(r["tokens_total"] or 0),
        "cost_usd": float(r["cost_usd"] or 0),
        "cost_unknown": int(r["cost_unknown"] or 0),
        "mean_ms": (float(r["latency_sum_ms"]) / n) if n else None,
        "p50_ms": histogram.quantile(h, 0.50) if n else None,
        "p95_ms": histogram.quantile(h, 0.95) if n else None,
    }


class _Acc:
    """Sums of groups of rollup rows, histograms merged."""

    def __init__(self) -> None:
        self.row: dict[str, Any] = {
            "requests": 0,
            "errors": 0,
            "tokens_total": 0,
            "cost_usd": Decimal(0),
            "cost_unknown": 0,
            "latency_count": 0,
            "latency_sum_ms": 0.0,
        }
        self.hist: list[int] = []

    def add(self, r: dict[str, Any]) -> None:
        for k in self.row:
            self.row[k] += r[k] or 0
        self.hist = histogram.add(self.hist, dense_histogram(r["hist"], int(r["latency_count"] or 0)))

    def stats(self) -> dict[str, Any]:
        return _stats(self.row, self.hist)


def _grouped(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    accs: dict[str, _Acc] = {}
    for r in rows:
        accs.setdefault(r[key] or "", _Acc()).add(r)
    out = [{"key": k or None, **a.stats()} for k, a in accs.items()]
    out.sort(key=lambda x: (-x["cost_usd"], -x["requests"], x["key"] or ""))
    return out


def _filled(rows: list[dict[str, Any]], span: Span, period: Period) -> list[dict[str, Any]]:
    """The series with every hour (day) of the range, zeros where nothing was logged, so a
    chart never draws a line across a gap."""
    found = {r["start"]: _stats(r) for r in rows}
    zero = {
        "requests": 0,
        "errors": 0,
        "tokens": 0,
        "cost_usd": 0.0,
        "cost_unknown": 0,
        "mean_ms": None,
        "p50_ms": None,
        "p95_ms": None,
    }
    step = timedelta(hours=1) if period == "hour" else timedelta(days=1)
    assert span.since is not None
    t = floor_hour(span.since) if period == "hour" else floor_day(span.since)
    end = span.until or datetime.now(UTC)
    out: list[dict[str, Any]] = []
    while t < end and len(out) < 10_000:
        out.append({"t": t, **found.get(t, zero)})
        t += step
    return out


def overview(
    ctx: Ctx, *, since: When, until: When | None = None, period: Period = "hour"
) -> Plan[dict[str, Any]]:
    """Totals, a time series (requests, errors, cost, p50/p95 per hour or day) and the
    breakdowns by model and request type, from the tenant rollups."""
    span = yield from resolve(ctx, since=since, until=until)
    source, params = rollup_source(span, _METRICS, grain="hour" if period == "hour" else None, period=period)
    series: list[dict[str, Any]] = yield Query(
        sql.SQL(_SERIES).format(sums=_HIST_SUMS, source=source), params
    )
    source, params = rollup_source(span, ("model", "request_type", *_METRICS))
    groups: list[dict[str, Any]] = yield Query(
        sql.SQL(_GROUPS).format(sums=_HIST_SUMS, source=source), params
    )
    total = _Acc()
    for g in groups:
        total.add(g)
    return {
        "since": span.since,
        "until": span.until,
        "period": period,
        "totals": total.stats(),
        "series": _filled(series, span, period),
        "by_model": _grouped(groups, "model"),
        "by_type": _grouped(groups, "request_type"),
    }


def top_users(ctx: Ctx, *, since: When, until: When | None = None) -> Plan[list[dict[str, Any]]]:
    """The 10 users with the highest cost in the range (the per-user rollups: the
    overview's heaviest part, a separate call so the page loads both at once)."""
    span = yield from resolve(ctx, since=since, until=until)
    return (yield from _top_users(ctx, span))


_TOP_USERS = """
WITH g AS (
    SELECT user_id, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
           sum(tokens_total)::bigint AS tokens_total, coalesce(sum(cost_usd), 0) AS cost_usd
      FROM {source}
     GROUP BY user_id
     ORDER BY 5 DESC, 2 DESC
     LIMIT 10)
SELECT nullif(g.user_id, %s) AS user_id, u.external_id, g.requests, g.errors, g.tokens_total,
       g.cost_usd
  FROM g LEFT JOIN llmbase.users u ON u.tenant_id = %s AND u.id = g.user_id
 ORDER BY g.cost_usd DESC, g.requests DESC"""


def _top_users(ctx: Ctx, span: Span) -> Plan[list[dict[str, Any]]]:
    source, params = rollup_source(span, ("user_id", "requests", "errors", "tokens_total", "cost_usd"))
    rows: list[dict[str, Any]] = yield Query(
        sql.SQL(_TOP_USERS).format(source=source), (*params, UUID(int=0), span.tenant_id)
    )
    return [
        {
            "user_id": r["user_id"],
            "external_id": r["external_id"],
            "requests": r["requests"],
            "errors": r["errors"],
            "tokens": r["tokens_total"],
            "cost_usd": float(r["cost_usd"]),
        }
        for r in rows
    ]


_FACETS = """
SELECT DISTINCT nullif(model, '') AS model
  FROM llmbase.request_rollups_tenant
 WHERE tenant_id = %s AND grain = 'day' AND bucket_start >= now() - interval '400 days'
 ORDER BY 1"""


def facets(ctx: Ctx) -> Plan[dict[str, Any]]:
    """The filter choices of the request explorer: models seen (from the day rollups),
    statuses and request types."""
    tid = ctx.scope.require_tenant()
    rows: list[tuple[str | None]] = yield Query(_FACETS, (tid,), tuples=True)
    return {
        "models": [r[0] for r in rows if r[0]],
        "statuses": list(STATUSES),
        "request_types": list(REQUEST_TYPES),
    }


_LIST = (
    "SELECT p.*, u.external_id AS user_external_id FROM ("
    "SELECT q.id, q.created_at, q.request_type, q.provider, q.model, q.user_id, q.status,"
    " q.error_kind, q.latency_ms, q.tokens_total, q.cost_usd, q.cache_hit, q.conversation_id,"
    " q.run_id, q.iteration FROM llmbase.requests AS q{where}"
    " ORDER BY q.created_at DESC, q.id DESC LIMIT %s) AS p"
    " LEFT JOIN llmbase.users AS u ON u.tenant_id = %s AND u.id = p.user_id"
    " ORDER BY p.created_at DESC, p.id DESC"
)


def _choice(value: str | None, options: Sequence[str], field: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in options:
        raise ValidationError(f"must be one of {', '.join(options)}", field=field)
    return value


def requests(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    model: str | None = None,
    status: str | None = None,
    request_type: str | None = None,
    user: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Plan[dict[str, Any]]:
    """Calls newest first with filters; `{"items", "next_cursor"}`."""
    status = _choice(status, STATUSES, "status")
    request_type = _choice(request_type, REQUEST_TYPES, "request_type")
    span = yield from resolve(
        ctx,
        since=since,
        until=until,
        user=user or None,
        model=model or None,
        request_type=request_type,
    )
    n = check_limit(limit, 500)
    where = Where().span(span, alias="q", time_column="created_at")
    if status is not None:
        where.add("q.status = %s", status)
    if cursor:
        at, ident = decode_cursor(cursor)
        where.add("(q.created_at, q.id) < (%s, %s)", at, ident)
    rows: list[dict[str, Any]] = yield Query(
        sql.SQL(_LIST).format(where=where.clause()), (*where.params, n + 1, span.tenant_id)
    )
    items = rows[:n]
    nxt = encode_cursor(items[-1]["created_at"], items[-1]["id"]) if len(rows) > n else None
    return {"items": items, "next_cursor": nxt}


def request(ctx: Ctx, request_id: UUID | str, at: datetime | None = None) -> Plan[dict[str, Any]]:
    """One call with its bodies. `at` (its created_at) lets one partition answer."""
    tid = ctx.scope.require_tenant()
    rid = parse_id(request_id)
    where = Where().add("q.tenant_id = %s", tid).add("q.id = %s", rid)
    if at is not None:
        where.add("q.created_at = %s", at)
    row: dict[str, Any] = yield Query(
        sql.SQL(
            "SELECT q.*, u.external_id AS user_external_id FROM llmbase.requests AS q"
            " LEFT JOIN llmbase.users AS u ON u.tenant_id = q.tenant_id AND u.id = q.user_id{}"
            " LIMIT 1"
        ).format(where.clause()),
        where.params,
        fetch="one",
        not_found=NotFound("request", str(rid)),
    )
    return row


_RUNS = (
    "SELECT r.id, r.name, r.status, r.user_id, u.external_id AS user_external_id,"
    " r.conversation_id, r.started_at, r.ended_at, r.total_ms, r.iteration_count, r.api_ms,"
    " r.tool_ms, r.error"
    " FROM llmbase.runs AS r LEFT JOIN llmbase.users AS u"
    " ON u.tenant_id = r.tenant_id AND u.id = r.user_id{where}"
    " ORDER BY r.started_at DESC, r.id DESC LIMIT %s"
)


def runs(ctx: Ctx, *, cursor: str | None = None, limit: int = 50) -> Plan[dict[str, Any]]:
    """Agent runs, newest first; `{"items", "next_cursor"}`."""
    tid = ctx.scope.require_tenant()
    n = check_limit(limit, 500)
    where = Where().add("r.tenant_id = %s", tid)
    if cursor:
        at, ident = decode_cursor(cursor)
        where.add("(r.started_at, r.id) < (%s, %s)", at, ident)
    rows: list[dict[str, Any]] = yield Query(
        sql.SQL(_RUNS).format(where=where.clause()), (*where.params, n + 1)
    )
    items = rows[:n]
    nxt = encode_cursor(items[-1]["started_at"], items[-1]["id"]) if len(rows) > n else None
    return {"items": items, "next_cursor": nxt}


def run(ctx: Ctx, run_id: UUID | str) -> Plan[dict[str, Any]]:
    """One run with its iterations (API time vs tool time) and tool calls."""
    tid = ctx.scope.require_tenant()
    rid = parse_id(run_id)
    where = Where().add("r.tenant_id = %s", tid).add("r.id = %s", rid)
    head: dict[str, Any] = yield Query(
        sql.SQL(_RUNS).format(where=where.clause()),
        (*where.params, 1),
        fetch="one",
        not_found=NotFound("run", str(rid)),
    )
    iterations: list[dict[str, Any]] = yield Query(
        "SELECT iteration, started_at, ended_at, total_ms, api_ms, tool_ms, api_calls, tool_calls"
        " FROM llmbase.run_iterations WHERE tenant_id = %s AND run_id = %s ORDER BY iteration",
        (tid, rid),
    )
    tools: list[dict[str, Any]] = yield Query(
        "SELECT id, iteration, name, started_at, duration_ms, status, error"
        " FROM llmbase.run_tool_calls WHERE tenant_id = %s AND run_id = %s"
        " ORDER BY iteration NULLS LAST, started_at LIMIT 1000",
        (tid, rid),
    )
    return {**head, "iterations": iterations, "tool_calls": tools}


def conversation_feedback(ctx: Ctx, conversation_id: UUID) -> Plan[dict[str, Any]]:
    """Per-message feedback totals and the comments of one conversation."""
    tid = ctx.scope.require_tenant()
    summary: list[dict[str, Any]] = yield Query(
        "SELECT message_id, thumbs_up, thumbs_down, score_count, score_sum, comment_count"
        " FROM llmbase.feedback_summary WHERE tenant_id = %s AND conversation_id = %s",
        (tid, conversation_id),
    )
    comments: list[dict[str, Any]] = yield Query(
        "SELECT f.message_id, f.rating, f.score, f.comment, f.created_at,"
        " u.external_id AS user_external_id"
        " FROM llmbase.feedback AS f LEFT JOIN llmbase.users AS u"
        " ON u.tenant_id = f.tenant_id AND u.id = f.user_id"
        " WHERE f.tenant_id = %s AND f.conversation_id = %s ORDER BY f.created_at LIMIT 500",
        (tid, conversation_id),
    )
    return {"messages": summary, "feedback": comments}
