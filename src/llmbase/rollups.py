"""Operator tool: recompute llmbase.request_rollups (and its tenant level,
llmbase.request_rollups_tenant) from the raw request log.

The background writer keeps the rollups current with every batch; this rebuilds them for a
time range after a manual import (rows COPYed straight into llmbase.requests), a repair, or
a benchmark load. One transaction: the rollups of the range are deleted and inserted again,
both grains, with the latency histogram computed in SQL by the rule of
llmbase.histogram.bucket (so the two always agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg import sql

from . import histogram
from .db import operator_connection
from .errors import ValidationError
from .reports._time import When, ceil_day, floor_day, parse_when

__all__ = ["RebuildResult", "rebuild_rollups"]

# llmbase.histogram.bucket in SQL: i = floor(ln(ms / MIN_MS) / ln(GAMMA)), clamped to
# 0 .. BUCKETS - 1; a latency <= MIN_MS (or NULL, like bucket(nan)) is bucket 0. As in the
# writer, only calls with a latency enter the histogram and latency_count.
_BUCKET = sql.SQL(
    "CASE WHEN latency_ms IS NULL OR latency_ms <= {min}::float8 THEN 0"
    " ELSE least(floor(ln(latency_ms / {min}::float8) / ln({g}::float8))::int, {last}) END"
).format(
    min=sql.Literal(histogram.MIN_MS),
    g=sql.Literal(histogram.GAMMA),
    last=sql.Literal(histogram.BUCKETS - 1),
)

# 1. Histogram counts per hourly key and bucket, from the raw rows of the range that have
#    a latency.
_HOUR_BUCKETS = sql.SQL(
    "CREATE TEMP TABLE rb_hist ON COMMIT DROP AS"
    " SELECT tenant_id, date_trunc('hour', created_at, 'UTC') AS bucket_start,"
    " coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid) AS user_id,"
    " coalesce(model, '') AS model, coalesce(provider, '') AS provider, request_type,"
    " {bucket} AS b, count(*)::bigint AS c"
    " FROM llmbase.requests WHERE created_at >= %s AND created_at < %s{tenant}"
    " AND latency_ms IS NOT NULL"
    " GROUP BY 1, 2, 3, 4, 5, 6, 7"
)

# 2. Counters per hourly key.
_HOUR_COUNTERS = sql.SQL(
    "CREATE TEMP TABLE rb_hour ON COMMIT DROP AS"
    " SELECT tenant_id, date_trunc('hour', created_at, 'UTC') AS bucket_start,"
    " coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid) AS user_id,"
    " coalesce(model, '') AS model, coalesce(provider, '') AS provider, request_type,"
    " count(*)::bigint AS requests,"
    " count(*) FILTER (WHERE status <> 'success')::bigint AS errors,"
    " coalesce(sum(tokens_prompt), 0)::bigint AS tokens_prompt,"
    " coalesce(sum(tokens_completion), 0)::bigint AS tokens_completion,"
    " coalesce(sum(tokens_total), 0)::bigint AS tokens_total,"
    " coalesce(sum(tokens_cached), 0)::bigint AS tokens_cached,"
    " coalesce(sum(tokens_reasoning), 0)::bigint AS tokens_reasoning,"
    " coalesce(sum(cost_usd), 0) AS cost_usd,"
    " count(*) FILTER (WHERE cost_unknown)::bigint AS cost_unknown,"
    " count(*) FILTER (WHERE cache_hit)::bigint AS cache_hits,"
    " coalesce(sum(cost_saved_usd), 0) AS cost_saved_usd,"
    " count(latency_ms)::bigint AS latency_count,"
    " coalesce(sum(latency_ms), 0)::float8 AS latency_sum_ms,"
    " coalesce(max(latency_ms), 0)::float8 AS latency_max_ms,"
    " count(ttft_ms)::bigint AS ttft_count,"
    " coalesce(sum(ttft_ms), 0)::float8 AS ttft_sum_ms"
    " FROM llmbase.requests WHERE created_at >= %s AND created_at < %s{tenant}"
    " GROUP BY 1, 2, 3, 4, 5, 6"
)

# 3. Day keys from the hour keys: counters add up, histogram counts add up per bucket.
_DAY_BUCKETS = (
    "CREATE TEMP TABLE rb_dhist ON COMMIT DROP AS"
    " SELECT tenant_id, date_trunc('day', bucket_start, 'UTC') AS bucket_start, user_id, model,"
    " provider, request_type, b, sum(c)::bigint AS c FROM rb_hist GROUP BY 1, 2, 3, 4, 5, 6, 7"
)
_DAY_COUNTERS = (
    "CREATE TEMP TABLE rb_day ON COMMIT DROP AS"
    " SELECT tenant_id, date_trunc('day', bucket_start, 'UTC') AS bucket_start, user_id, model,"
    " provider, request_type, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,"
    " sum(tokens_prompt)::bigint AS tokens_prompt, sum(tokens_completion)::bigint AS tokens_completion,"
    " sum(tokens_total)::bigint AS tokens_total, sum(tokens_cached)::bigint AS tokens_cached,"
    " sum(tokens_reasoning)::bigint AS tokens_reasoning, sum(cost_usd) AS cost_usd,"
    " sum(cost_unknown)::bigint AS cost_unknown, sum(cache_hits)::bigint AS cache_hits,"
    " sum(cost_saved_usd) AS cost_saved_usd, sum(latency_count)::bigint AS latency_count,"
    " sum(latency_sum_ms) AS latency_sum_ms, max(latency_max_ms) AS latency_max_ms,"
    " sum(ttft_count)::bigint AS ttft_count, sum(ttft_sum_ms) AS ttft_sum_ms"
    " FROM rb_hour GROUP BY 1, 2, 3, 4, 5, 6"
)

# 3b. The tenant level (llmbase.request_rollups_tenant): the per-user tables summed over users.
_TENANT_BUCKETS = sql.SQL(
    "CREATE TEMP TABLE {out} ON COMMIT DROP AS"
    " SELECT tenant_id, bucket_start, model, provider, request_type, b, sum(c)::bigint AS c"
    " FROM {src} GROUP BY 1, 2, 3, 4, 5, 6"
)
_TENANT_COUNTERS = sql.SQL(
    "CREATE TEMP TABLE {out} ON COMMIT DROP AS"
    " SELECT tenant_id, bucket_start, model, provider, request_type,"
    " sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,"
    " sum(tokens_prompt)::bigint AS tokens_prompt, sum(tokens_completion)::bigint AS tokens_completion,"
    " sum(tokens_total)::bigint AS tokens_total, sum(tokens_cached)::bigint AS tokens_cached,"
    " sum(tokens_reasoning)::bigint AS tokens_reasoning, sum(cost_usd) AS cost_usd,"
    " sum(cost_unknown)::bigint AS cost_unknown, sum(cache_hits)::bigint AS cache_hits,"
    " sum(cost_saved_usd) AS cost_saved_usd, sum(latency_count)::bigint AS latency_count,"
    " sum(latency_sum_ms) AS latency_sum_ms, max(latency_max_ms) AS latency_max_ms,"
    " sum(ttft_count)::bigint AS ttft_count, sum(ttft_sum_ms) AS ttft_sum_ms"
    " FROM {src} GROUP BY 1, 2, 3, 4, 5"
)

_DELETE = sql.SQL("DELETE FROM {table} WHERE bucket_start >= %s AND bucket_start < %s{tenant}")

# 4. Insert one grain: the counters, and the histogram as a dense bigint[] (index i + 1
#    holds bucket i; trailing zeros trimmed, like llmbase.histogram.from_values; '{}' for
#    keys whose calls have no latency).
_INSERT = sql.SQL(
    "INSERT INTO {table} (grain, tenant_id, bucket_start, {user}model, provider,"
    " request_type, requests, errors, tokens_prompt,"
    " tokens_completion, tokens_total, tokens_cached, tokens_reasoning, cost_usd, cost_unknown,"
    " cache_hits, cost_saved_usd, latency_count, latency_sum_ms, latency_max_ms, latency_hist,"
    " ttft_count, ttft_sum_ms)"
    " SELECT %s, k.tenant_id, k.bucket_start, {kuser}k.model, k.provider, k.request_type,"
    " k.requests, k.errors, k.tokens_prompt, k.tokens_completion, k.tokens_total, k.tokens_cached,"
    " k.tokens_reasoning, k.cost_usd, k.cost_unknown, k.cache_hits, k.cost_saved_usd,"
    " k.latency_count, k.latency_sum_ms, k.latency_max_ms,"
    " coalesce((SELECT array_agg(coalesce(h.cs[array_position(h.bs, g.i)], 0) ORDER BY g.i)"
    "    FROM generate_series(0, h.top) AS g(i)), '{{}}'),"
    " k.ttft_count, k.ttft_sum_ms"
    " FROM {counters} AS k LEFT JOIN ("
    "   SELECT tenant_id, bucket_start, {user}model, provider, request_type,"
    "   array_agg(b) AS bs, array_agg(c) AS cs, max(b) AS top"
    "   FROM {hist} GROUP BY tenant_id, bucket_start, {user}model, provider, request_type) AS h"
    " USING (tenant_id, bucket_start, {user}model, provider, request_type)"
)
_PER_USER = sql.Identifier("llmbase", "request_rollups")
_PER_TENANT = sql.Identifier("llmbase", "request_rollups_tenant")


_TEMPS: LiteralString = "rb_hist, rb_hour, rb_dhist, rb_day, rb_thist, rb_thour, rb_tdhist, rb_tday"


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild covered and wrote."""

    since: datetime
    until: datetime
    tenant_id: UUID | None
    requests: int
    hour_rows: int
    day_rows: int


def rebuild_rollups(
    url_or_conn: str | psycopg.Connection[Any],
    since: When,
    until: When,
    tenant: UUID | None = None,
) -> RebuildResult:
    """Recompute the hour and day rollups of [since, until) (widened to whole UTC days),
    per user and per tenant, from llmbase.requests, for one tenant or all, in one
    transaction. The counts returned are those of the per-user table.

    Connect as the schema owner (operator scope). The rollups table is locked against
    concurrent writers for the duration (SHARE ROW EXCLUSIVE: readers go on), so a batch
    the writer commits meanwhile is counted exactly once: before the rebuild reads the log,
    or added by the writer after it."""
    lo = parse_when(since, field="since")
    hi = parse_when(until, field="until")
    if lo is None or hi is None:
        raise ValidationError("since and until are required", field="since")
    lo, hi = floor_day(lo), ceil_day(hi)
    if hi <= lo:
        hi = lo + timedelta(days=1)
    tenant_sql: sql.Composable = sql.SQL("")
    tparams: tuple[Any, ...] = ()
    if tenant is not None:
        tenant_sql, tparams = sql.SQL(" AND tenant_id = %s"), (tenant,)
    rng = (lo, hi, *tparams)
    with operator_connection(url_or_conn) as conn, conn.transaction():
        conn.execute("SELECT set_config('llmbase.admin', 'on', true)")
        conn.execute("SET LOCAL work_mem = '256MB'")
        conn.execute(
            "LOCK TABLE llmbase.request_rollups, llmbase.request_rollups_tenant IN SHARE ROW EXCLUSIVE MODE"
        )
        conn.execute(_HOUR_BUCKETS.format(bucket=_BUCKET, tenant=tenant_sql), rng)
        conn.execute(_HOUR_COUNTERS.format(tenant=tenant_sql), rng)
        conn.execute(_DAY_BUCKETS)
        conn.execute(_DAY_COUNTERS)
        for out, src in (("rb_thist", "rb_hist"), ("rb_tdhist", "rb_dhist")):
            conn.execute(_TENANT_BUCKETS.format(out=sql.Identifier(out), src=sql.Identifier(src)))
        for out, src in (("rb_thour", "rb_hour"), ("rb_tday", "rb_day")):
            conn.execute(_TENANT_COUNTERS.format(out=sql.Identifier(out), src=sql.Identifier(src)))
        conn.execute("ANALYZE " + _TEMPS)
        hours = days = 0
        for table, user, temps in (
            (_PER_USER, True, (("hour", "rb_hour", "rb_hist"), ("day", "rb_day", "rb_dhist"))),
            (_PER_TENANT, False, (("hour", "rb_thour", "rb_thist"), ("day", "rb_tday", "rb_tdhist"))),
        ):
            conn.execute(_DELETE.format(table=table, tenant=tenant_sql), rng)
            for grain, counters, hist in temps:
                cur = conn.execute(
                    _INSERT.format(
                        table=table,
                        user=sql.SQL("user_id, " if user else ""),
                        kuser=sql.SQL("k.user_id, " if user else ""),
                        counters=sql.Identifier(counters),
                        hist=sql.Identifier(hist),
                    ),
                    (grain,),
                )
                if user and grain == "hour":
                    hours = cur.rowcount
                elif user:
                    days = cur.rowcount
        row = conn.execute("SELECT coalesce(sum(requests), 0)::bigint FROM rb_day").fetchone()
        total = int(row[0]) if row else 0
        conn.execute("DROP TABLE " + _TEMPS)
    return RebuildResult(lo, hi, tenant, total, hours, days)
