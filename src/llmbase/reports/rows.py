"""Typed rows of the reports (frozen dataclasses; money is Decimal, times are UTC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

__all__ = [
    "Breakdown",
    "Completion",
    "ErrorRate",
    "IterationStats",
    "IterationTrend",
    "Latency",
    "PeriodUsage",
    "SlowRequest",
    "UserCost",
    "UserUsage",
]


@dataclass(frozen=True)
class UserCost:
    """Cost by user (seed 000): `user_id` None gathers calls logged without a user."""

    tenant_id: UUID
    user_id: UUID | None
    external_id: str | None
    requests: int
    errors: int
    tokens_total: int
    cost_usd: Decimal
    cost_unknown: int  # calls without a known price (their cost is not in cost_usd)


@dataclass(frozen=True)
class ErrorRate:
    """Error rate by model and request type (seed 000); model None: calls without a model."""

    model: str | None
    request_type: str
    requests: int
    errors: int
    error_rate_pct: float


@dataclass(frozen=True)
class Latency:
    """Latency by request type and model (seed 000) over every call (errors included).

    Percentiles come from the rollups' histograms: each within 5% of the exact order
    statistic (llmbase.histogram.RELATIVE_ERROR); mean and max are exact."""

    request_type: str
    model: str | None
    requests: int
    latency_count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    avg_tokens: float | None


@dataclass(frozen=True)
class PeriodUsage:
    """Usage of one period (hour, UTC day or month): daily, hourly, monthly and today."""

    start: datetime
    requests: int
    errors: int
    tokens_prompt: int
    tokens_completion: int
    tokens_total: int
    cost_usd: Decimal
    active_users: int
    mean_latency_ms: float | None


@dataclass(frozen=True)
class SlowRequest:
    """One of the slowest calls (from the request log itself)."""

    id: UUID
    tenant_id: UUID
    created_at: datetime
    user_id: UUID | None
    request_type: str
    provider: str | None
    model: str | None
    status: str
    latency_ms: float | None
    ttft_ms: float | None
    tokens_total: int | None
    cost_usd: Decimal | None
    conversation_id: UUID | None
    run_id: UUID | None
    iteration: int | None


@dataclass(frozen=True)
class IterationStats:
    """Agent-run statistics per iteration number (seed 004: slowdown patterns)."""

    iteration: int
    samples: int
    avg_api_ms: float | None
    min_api_ms: float | None
    max_api_ms: float | None
    median_api_ms: float | None
    avg_tool_ms: float | None
    avg_total_ms: float | None


@dataclass(frozen=True)
class IterationTrend:
    """Iteration timing per hour (seed 004's performance trends)."""

    hour: datetime
    iterations: int
    avg_api_ms: float | None
    avg_tool_ms: float | None
    avg_total_ms: float | None


@dataclass(frozen=True)
class Completion:
    """A completed conversation (seed 004's completion statistics)."""

    conversation_id: UUID
    tenant_id: UUID
    user_id: UUID | None
    title: str | None
    total_iterations: int | None
    total_time_ms: int | None
    avg_ms_per_iteration: float | None
    completed_at: datetime


@dataclass(frozen=True)
class Breakdown:
    """One slice of a user's usage (by request type or by model)."""

    key: str | None
    requests: int
    errors: int
    tokens_total: int
    cost_usd: Decimal
    mean_latency_ms: float | None


@dataclass(frozen=True)
class UserUsage:
    """Seed 001's get_usage_stats for one user over a time range."""

    user_id: UUID
    external_id: str | None
    since: datetime | None
    until: datetime | None
    requests: int
    errors: int
    tokens_prompt: int
    tokens_completion: int
    tokens_total: int
    cost_usd: Decimal
    mean_latency_ms: float | None
    by_type: list[Breakdown] = field(default_factory=list)
    by_model: list[Breakdown] = field(default_factory=list)
