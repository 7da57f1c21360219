"""The SQL of the hot path (consume, check, reserve, settle) and the parsing of its rows."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from ._sql import Rows, Statement
from ._types import BudgetState, LimitResult, LimitState, Reservation

__all__ = [
    "adjust",
    "consume",
    "limit_result",
    "reservation",
    "reserve",
    "settle",
]

_CONSUME = (
    "SELECT limit_id, subject, per_user, metric, period, limit_value, subject_key, window_start,"
    " reset_at, used, allowed, greatest(extract(epoch FROM reset_at - clock_timestamp()), 0)::float8"
    " FROM llmbase.consume_limits($1, $2, $3, $4, $5)"
)
_RESERVE = (
    "SELECT budget_id, user_id, per_user, mode, cap_usd, spent_usd, reserved_usd, amount_usd,"
    " allowed, over_cap, unpriced, reset_at,"
    " greatest(extract(epoch FROM reset_at - clock_timestamp()), 0)::float8"
    " FROM llmbase.reserve_budget($1, $2, $3, $4, $5)"
)
_SETTLE = "SELECT llmbase.settle_budget($1, $2, $3)"
_ADJUST = "SELECT llmbase.adjust_limit_usage($1::uuid[], $2::uuid[], $3::timestamptz[], $4)"


def consume(
    requests: int, tokens: int, api_key: UUID | None, user: UUID | None, *, dry_run: bool
) -> Statement:
    return _CONSUME, (requests, tokens, api_key, user, dry_run)


def reserve(
    rid: UUID, estimate: Decimal | None, ttl_seconds: int, user: UUID | None, *, dry_run: bool = False
) -> Statement:
    return _RESERVE, (rid, estimate, ttl_seconds, user, dry_run)


def settle(rid: UUID, cost: Decimal | None, *, cancel: bool = False) -> Statement:
    return _SETTLE, (rid, cost, cancel)


def adjust(counters: Sequence[tuple[UUID, UUID, Any]], delta: int) -> Statement:
    return _ADJUST, (
        [c[0] for c in counters],
        [c[1] for c in counters],
        [c[2] for c in counters],
        delta,
    )


def limit_result(rows: Rows, requests: int, tokens: int) -> LimitResult:
    """Per-limit states and the governing limit of a consume_limits result."""
    states: list[LimitState] = []
    for lid, subject, per_user, metric, period, value, key, start, reset, used, ok, wait in rows:
        amount = requests if metric == "requests" else tokens
        remaining = value - used - amount if ok else max(value - used, 0)
        states.append(
            LimitState(
                lid,
                subject,
                per_user,
                metric,
                period,
                value,
                key,
                start,
                reset,
                used,
                amount,
                ok,
                max(remaining, 0),
                0.0 if ok else float(wait),
            )
        )
    if not states:
        return LimitResult(True, None, 0.0, None, None, ())
    refused = [s for s in states if not s.allowed]
    allowed = not refused
    if refused:
        gov = max(refused, key=lambda s: s.retry_after)
    else:
        gov = min(states, key=lambda s: s.remaining / s.limit)
    return LimitResult(allowed, gov.remaining, gov.retry_after, gov.limit, gov.name, tuple(states))


def reservation(rid: UUID, estimate: Decimal | None, rows: Rows) -> Reservation:
    states = tuple(
        BudgetState(
            bid,
            uid,
            per_user,
            mode,
            cap,
            spent,
            reserved,
            amount,
            ok,
            over,
            unpriced,
            reset,
            0.0 if ok else float(wait),
        )
        for bid, uid, per_user, mode, cap, spent, reserved, amount, ok, over, unpriced, reset, wait in rows
    )
    return Reservation(rid, all(b.allowed for b in states), estimate, states)
