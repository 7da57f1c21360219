"""Usage and every report of `client.reports` (docs/reports.md) under `/v1/reports/...`:
the key's tenant (a user's key: that user's own calls). Every report takes `since` and
`until` (ISO date or datetime, or a relative form such as `7d`, `24h`) and, where it
applies, `model`, `user` (id or external id) and `request_type`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from ...errors import ValidationError
from ...reports import (
    Completion,
    ErrorRate,
    IterationStats,
    IterationTrend,
    Latency,
    PeriodUsage,
    SlowRequest,
    UserCost,
    UserUsage,
    parse_when,
)
from ..auth import Principal, require
from ._common import ERRORS

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=ERRORS)

_Text = Annotated[str | None, Query(min_length=1, max_length=200)]
_When = Annotated[
    str | None,
    Query(min_length=1, max_length=64, description="ISO date/datetime or relative (7d, 24h)."),
]


def _when(value: str | None, field: str) -> datetime | None:
    try:
        at = parse_when(value, field=field)
    except ValidationError:
        raise
    except (ValueError, OverflowError):
        raise ValidationError("not a valid time", field=field) from None
    if at is not None and not 1970 <= at.year <= 2500:
        raise ValidationError("must be between 1970 and 2500", field=field)
    return at


def _user_ref(user: str) -> UUID | str:
    try:
        return UUID(user)
    except ValueError:
        return user


@dataclass(frozen=True)
class Span:
    since: datetime | None
    until: datetime | None
    user: str | None

    def args(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "user": self.user}


@dataclass(frozen=True)
class Filters(Span):
    model: str | None
    request_type: str | None

    def args(self) -> dict[str, Any]:
        return {**super().args(), "model": self.model, "request_type": self.request_type}


def span(since: _When = None, until: _When = None, user: _Text = None) -> Span:
    return Span(_when(since, "since"), _when(until, "until"), user)


def filters(
    since: _When = None,
    until: _When = None,
    user: _Text = None,
    model: _Text = None,
    request_type: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
) -> Filters:
    return Filters(_when(since, "since"), _when(until, "until"), user, model, request_type)


F = Annotated[Filters, Depends(filters)]
S = Annotated[Span, Depends(span)]


@router.get("/daily", response_model=list[PeriodUsage])
def daily(f: F, principal: Principal = require("read")) -> list[PeriodUsage]:
    """Requests, errors, tokens, cost, active users and mean latency per UTC day."""
    return principal.client.reports.daily(**f.args())


@router.get("/hourly", response_model=list[PeriodUsage])
def hourly(f: F, principal: Principal = require("read")) -> list[PeriodUsage]:
    return principal.client.reports.hourly(**f.args())


@router.get("/monthly", response_model=list[PeriodUsage])
def monthly(f: F, principal: Principal = require("read")) -> list[PeriodUsage]:
    return principal.client.reports.monthly(**f.args())


@router.get("/today", response_model=PeriodUsage)
def today(f: F, principal: Principal = require("read")) -> PeriodUsage:
    """Totals of the current UTC day (since/until are ignored)."""
    a = f.args()
    return principal.client.reports.today(model=a["model"], user=a["user"], request_type=a["request_type"])


@router.get("/cost-by-user", response_model=list[UserCost])
def cost_by_user(
    f: F,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    principal: Principal = require("read"),
) -> list[UserCost]:
    """Requests, tokens and cost per user, most expensive first."""
    return principal.client.reports.cost_by_user(**f.args(), limit=limit)


@router.get("/user-usage", response_model=UserUsage)
def user_usage(f: F, principal: Principal = require("read")) -> UserUsage:
    """One user's usage (`user`; a user's key: its own) with breakdowns by type and model.
    An unknown user (or another tenant's) is a 404."""
    if f.user is not None:
        principal.client.users.get(_user_ref(f.user))
    return principal.client.reports.user_usage(**f.args())


@router.get("/error-rate", response_model=list[ErrorRate])
def error_rate(f: F, principal: Principal = require("read")) -> list[ErrorRate]:
    """Errors per model and request type."""
    return principal.client.reports.error_rate(**f.args())


@router.get("/latency", response_model=list[Latency])
def latency(f: F, principal: Principal = require("read")) -> list[Latency]:
    """Latency percentiles per request type and model (from the rollups' histograms)."""
    return principal.client.reports.latency(**f.args())


@router.get("/slowest", response_model=list[SlowRequest])
def slowest(
    f: F,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    principal: Principal = require("read"),
) -> list[SlowRequest]:
    """The slowest calls."""
    return principal.client.reports.slowest(**f.args(), limit=limit)


@router.get("/iterations", response_model=list[IterationStats])
def iterations(
    s: S,
    run_name: _Text = None,
    min_samples: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1,
    principal: Principal = require("read"),
) -> list[IterationStats]:
    """Agent runs: API and tool time per iteration number."""
    return principal.client.reports.iterations(**s.args(), run_name=run_name, min_samples=min_samples)


@router.get("/iteration-trends", response_model=list[IterationTrend])
def iteration_trends(
    s: S, run_name: _Text = None, principal: Principal = require("read")
) -> list[IterationTrend]:
    """Agent iterations per hour with their mean API and tool time."""
    return principal.client.reports.iteration_trends(**s.args(), run_name=run_name)


@router.get("/completions", response_model=list[Completion])
def completions(
    s: S,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    principal: Principal = require("read"),
) -> list[Completion]:
    """Completed conversations with their time and iterations, latest first."""
    return principal.client.reports.completions(**s.args(), limit=limit)
