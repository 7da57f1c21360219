"""Analytics for every example query of the seeds, as SDK calls: `client.reports.<name>()`.

Aggregates read the maintained rollups (llmbase.request_rollups), never the raw log, so a
report costs the same at ten million calls as at ten thousand; latency percentiles come
from the rollups' mergeable histograms (within 5%, see llmbase.histogram). The slowest
calls, agent-run statistics and completions read their own tables, exactly.

Reports run in the client's scope under row-level security: a tenant-wide client reports
on its tenant, a user client on its own calls, `client.admin().reports` across tenants
(`tenant=` picks one). Every report takes `since` / `until` (datetime, date, ISO string or
a relative form such as "7d" or "24h") and, where it applies, `model`, `user` (id or
external id), `request_type` and `tenant`.
"""

from __future__ import annotations

from ..stores._bind import AsyncStore, Store, aop, op
from . import agents, quality, usage
from ._time import parse_duration, parse_when
from .rows import (
    Breakdown,
    Completion,
    ErrorRate,
    IterationStats,
    IterationTrend,
    Latency,
    PeriodUsage,
    SlowRequest,
    UserCost,
    UserUsage,
)

__all__ = [
    "AsyncReports",
    "Breakdown",
    "Completion",
    "ErrorRate",
    "IterationStats",
    "IterationTrend",
    "Latency",
    "PeriodUsage",
    "Reports",
    "SlowRequest",
    "UserCost",
    "UserUsage",
    "parse_duration",
    "parse_when",
]


class Reports(Store):
    """Analytics of the current scope (see the module docstring)."""

    cost_by_user = op(usage.cost_by_user)
    error_rate = op(quality.error_rate)
    latency = op(quality.latency)
    daily = op(usage.daily)
    hourly = op(usage.hourly)
    monthly = op(usage.monthly)
    today = op(usage.today)
    user_usage = op(usage.user_usage)
    slowest = op(quality.slowest)
    iterations = op(agents.iterations)
    iteration_trends = op(agents.iteration_trends)
    completions = op(agents.completions)


class AsyncReports(AsyncStore):
    """The same reports, awaited."""

    cost_by_user = aop(usage.cost_by_user)
    error_rate = aop(quality.error_rate)
    latency = aop(quality.latency)
    daily = aop(usage.daily)
    hourly = aop(usage.hourly)
    monthly = aop(usage.monthly)
    today = aop(usage.today)
    user_usage = aop(usage.user_usage)
    slowest = aop(quality.slowest)
    iterations = aop(agents.iterations)
    iteration_trends = aop(agents.iteration_trends)
    completions = aop(agents.completions)
