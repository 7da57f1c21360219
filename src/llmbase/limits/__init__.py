"""Rate limits and cost budgets: `client.limits` and `client.budgets` (see docs/limits.md).

Rate limits count requests or tokens per fixed window (minute, hour, day, UTC-aligned)
for the tenant, a user, an API key, or each user of the tenant separately. `consume` is
one atomic statement against every applicable limit: all or none, exact under any
concurrency. Budgets cap the cost in USD per calendar month (UTC); a call reserves its
estimate before it goes out and settles to its actual cost after, so concurrent calls never
overshoot a hard budget. `llmbase.limits.guard` is what instrumented calls use.
"""

from __future__ import annotations

import builtins
from decimal import Decimal
from typing import Any
from uuid import UUID

from .._ids import uuid7
from ..db import Scope
from . import _calls, _defs, _plans
from . import _validate as v
from ._sql import arun_statements, run_statements
from ._types import Budget, BudgetState, BudgetUsage, LimitResult, LimitState, RateLimit, Reservation

__all__ = [
    "AsyncBudgets",
    "AsyncLimits",
    "Budget",
    "BudgetState",
    "BudgetUsage",
    "Budgets",
    "LimitResult",
    "LimitState",
    "Limits",
    "RateLimit",
    "Reservation",
    "limits_maintenance",
]

#: The maintenance SQL function: deletes ended rate-limit windows, releases expired budget
#: reservations, purges old released ones. Run it in operator scope (`llmbase maintain`).
MAINTENANCE_SQL = (
    "SELECT counters_deleted, reservations_released, reservations_deleted FROM llmbase.limits_maintenance()"
)


def limits_maintenance(conn: Any) -> dict[str, int]:
    """Run llmbase.limits_maintenance() on an operator connection; returns its counts."""
    row = conn.execute(MAINTENANCE_SQL).fetchone()
    return {"counters_deleted": row[0], "reservations_released": row[1], "reservations_deleted": row[2]}


class _Bound:
    def __init__(self, core: Any) -> None:
        self._core = core


def _amounts(requests: Any, tokens: Any, api_key: Any) -> tuple[int, int, UUID | None]:
    return v.amount(requests, "requests"), v.amount(tokens, "tokens"), v.optional_id(api_key, "api_key")


def _consume_stmt(requests: int, tokens: int, key: UUID | None, user: UUID | None, dry: bool) -> Any:
    return _calls.consume(requests, tokens, key, user, dry_run=dry)


class Limits(_Bound):
    """Rate limits of the current tenant: define them (tenant-wide scope), check, consume."""

    def set(
        self,
        limit: int,
        *,
        metric: str = "requests",
        window: str = "minute",
        user: UUID | str | None = None,
        api_key: UUID | str | None = None,
        per_user: bool = False,
    ) -> RateLimit:
        """Create or change a limit: `limit` `metric` ('requests' | 'tokens') per `window`
        ('minute' | 'hour' | 'day') for the tenant (default), a `user` (id or external id),
        an `api_key` (id), or each user of the tenant separately (`per_user=True`)."""
        out: RateLimit = self._core.run(
            _plans.set_limit,
            limit,
            metric=metric,
            window=window,
            user=user,
            api_key=api_key,
            per_user=per_user,
        )
        _defs.invalidate(self._core.scope().tenant_id)
        return out

    def list(self) -> list[RateLimit]:
        out: list[RateLimit] = self._core.run(_plans.list_limits)
        return out

    def get(self, limit_id: UUID | str) -> RateLimit:
        out: RateLimit = self._core.run(_plans.get_limit, limit_id)
        return out

    def delete(self, limit_id: UUID | str) -> None:
        """Delete a limit and its counters (NotFound when it is not this tenant's)."""
        self._core.run(_plans.delete_limit, limit_id)
        _defs.invalidate(self._core.scope().tenant_id)

    def _user(self, user: UUID | str | None) -> UUID | None:
        if user is None or isinstance(user, UUID):
            return user
        uid: UUID | None = self._core.run(_plans.resolve_user, user)
        return uid

    def _call(self, requests: Any, tokens: Any, api_key: Any, user: Any, dry: bool) -> LimitResult:
        n_req, n_tok, key = _amounts(requests, tokens, api_key)
        scope: Scope = self._core.scope()
        scope.require_tenant()
        uid = self._user(user)
        rows = run_statements(self._core.db, scope, [_consume_stmt(n_req, n_tok, key, uid, dry)])
        return _calls.limit_result(rows[0], n_req, n_tok)

    def check(
        self,
        *,
        requests: int = 1,
        tokens: int = 0,
        api_key: UUID | str | None = None,
        user: UUID | str | None = None,
    ) -> LimitResult:
        """Would a call of `requests` and `tokens` be admitted now? Counts nothing."""
        return self._call(requests, tokens, api_key, user, True)

    def consume(
        self,
        *,
        requests: int = 1,
        tokens: int = 0,
        api_key: UUID | str | None = None,
        user: UUID | str | None = None,
    ) -> LimitResult:
        """Admit and count a call against every applicable limit, all or none. `user` (in a
        tenant-wide scope) counts it for that user; a user scope counts for itself."""
        return self._call(requests, tokens, api_key, user, False)


class AsyncLimits(_Bound):
    """Async `Limits`."""

    async def set(
        self,
        limit: int,
        *,
        metric: str = "requests",
        window: str = "minute",
        user: UUID | str | None = None,
        api_key: UUID | str | None = None,
        per_user: bool = False,
    ) -> RateLimit:
        out: RateLimit = await self._core.arun(
            _plans.set_limit,
            limit,
            metric=metric,
            window=window,
            user=user,
            api_key=api_key,
            per_user=per_user,
        )
        _defs.invalidate((await self._core.ascope()).tenant_id)
        return out

    async def list(self) -> list[RateLimit]:
        out: list[RateLimit] = await self._core.arun(_plans.list_limits)
        return out

    async def get(self, limit_id: UUID | str) -> RateLimit:
        out: RateLimit = await self._core.arun(_plans.get_limit, limit_id)
        return out

    async def delete(self, limit_id: UUID | str) -> None:
        await self._core.arun(_plans.delete_limit, limit_id)
        _defs.invalidate((await self._core.ascope()).tenant_id)

    async def _call(self, requests: Any, tokens: Any, api_key: Any, user: Any, dry: bool) -> LimitResult:
        n_req, n_tok, key = _amounts(requests, tokens, api_key)
        scope: Scope = await self._core.ascope()
        scope.require_tenant()
        uid = user
        if user is not None and not isinstance(user, UUID):
            uid = await self._core.arun(_plans.resolve_user, user)
        rows = await arun_statements(self._core.db, scope, [_consume_stmt(n_req, n_tok, key, uid, dry)])
        return _calls.limit_result(rows[0], n_req, n_tok)

    async def check(
        self,
        *,
        requests: int = 1,
        tokens: int = 0,
        api_key: UUID | str | None = None,
        user: UUID | str | None = None,
    ) -> LimitResult:
        return await self._call(requests, tokens, api_key, user, True)

    async def consume(
        self,
        *,
        requests: int = 1,
        tokens: int = 0,
        api_key: UUID | str | None = None,
        user: UUID | str | None = None,
    ) -> LimitResult:
        return await self._call(requests, tokens, api_key, user, False)


def _estimate(estimate_usd: Any) -> Decimal | None:
    return None if estimate_usd is None else v.money(estimate_usd, "estimate_usd", allow_zero=True)


class Budgets(_Bound):
    """Monthly cost budgets of the current tenant: define (tenant-wide scope), reserve, settle."""

    def set(
        self,
        cap_usd: Decimal | int | float | str,
        *,
        user: UUID | str | None = None,
        per_user: bool = False,
        mode: str = "hard",
        unpriced_call_usd: Decimal | int | float | str | None = None,
    ) -> Budget:
        """Create or change the monthly cap (USD) of the tenant (default), a `user`, or each
        user separately (`per_user`); `mode` 'hard' refuses, 'soft' warns."""
        out: Budget = self._core.run(
            _plans.set_budget,
            cap_usd,
            user=user,
            per_user=per_user,
            mode=mode,
            unpriced_call_usd=unpriced_call_usd,
        )
        _defs.invalidate(self._core.scope().tenant_id)
        return out

    def list(self) -> list[Budget]:
        out: list[Budget] = self._core.run(_plans.list_budgets)
        return out

    def get(self, budget_id: UUID | str) -> Budget:
        out: Budget = self._core.run(_plans.get_budget, budget_id)
        return out

    def delete(self, budget_id: UUID | str) -> None:
        self._core.run(_plans.delete_budget, budget_id)
        _defs.invalidate(self._core.scope().tenant_id)

    def usage(self, *, all_months: bool = False) -> builtins.list[BudgetUsage]:
        """Spent and reserved USD per budget and subject this month (or every month kept)."""
        out: list[BudgetUsage] = self._core.run(_plans.usage, all_months=v.flag(all_months, "all_months"))
        return out

    def _reserve(self, estimate_usd: Any, ttl: Any, user: Any, dry: bool) -> Reservation:
        est = _estimate(estimate_usd)
        seconds = v.ttl(ttl)
        scope: Scope = self._core.scope()
        scope.require_tenant()
        uid = user if user is None or isinstance(user, UUID) else self._core.run(_plans.resolve_user, user)
        rid = uuid7()
        rows = run_statements(self._core.db, scope, [_calls.reserve(rid, est, seconds, uid, dry_run=dry)])
        return _calls.reservation(rid, est, rows[0])

    def reserve(
        self,
        estimate_usd: Decimal | int | float | str | None,
        *,
        ttl: float = 600,
        user: UUID | str | None = None,
    ) -> Reservation:
        """Reserve an estimated cost (None: unknown price) against every applicable budget,
        all or none. Check `.allowed` (or call `.raise_for_budget()`), then `settle`."""
        return self._reserve(estimate_usd, ttl, user, False)

    def check(
        self, estimate_usd: Decimal | int | float | str | None, *, user: UUID | str | None = None
    ) -> Reservation:
        """Would a call of this estimated cost be admitted now? Reserves nothing."""
        return self._reserve(estimate_usd, 600, user, True)

    def settle(self, reservation_id: UUID | str, cost_usd: Decimal | int | float | str | None) -> int:
        """Turn a reservation into spend: the actual cost (None: the reserved estimate).
        Returns the number of budgets settled (0: unknown or already settled)."""
        rid = v.required_id(reservation_id, "reservation_id")
        cost = None if cost_usd is None else v.money(cost_usd, "cost_usd", allow_zero=True)
        rows = run_statements(self._core.db, self._core.scope(), [_calls.settle(rid, cost)])
        return int(rows[0][0][0])

    def release(self, reservation_id: UUID | str) -> int:
        """Give a reservation back without spending (the call did not happen)."""
        rid = v.required_id(reservation_id, "reservation_id")
        rows = run_statements(
            self._core.db, self._core.scope(), [_calls.settle(rid, Decimal(0), cancel=True)]
        )
        return int(rows[0][0][0])


class AsyncBudgets(_Bound):
    """Async `Budgets`."""

    async def set(
        self,
        cap_usd: Decimal | int | float | str,
        *,
        user: UUID | str | None = None,
        per_user: bool = False,
        mode: str = "hard",
        unpriced_call_usd: Decimal | int | float | str | None = None,
    ) -> Budget:
        out: Budget = await self._core.arun(
            _plans.set_budget,
            cap_usd,
            user=user,
            per_user=per_user,
            mode=mode,
            unpriced_call_usd=unpriced_call_usd,
        )
        _defs.invalidate((await self._core.ascope()).tenant_id)
        return out

    async def list(self) -> list[Budget]:
        out: list[Budget] = await self._core.arun(_plans.list_budgets)
        return out

    async def get(self, budget_id: UUID | str) -> Budget:
        out: Budget = await self._core.arun(_plans.get_budget, budget_id)
        return out

    async def delete(self, budget_id: UUID | str) -> None:
        await self._core.arun(_plans.delete_budget, budget_id)
        _defs.invalidate((await self._core.ascope()).tenant_id)

    async def usage(self, *, all_months: bool = False) -> builtins.list[BudgetUsage]:
        out: list[BudgetUsage] = await self._core.arun(
            _plans.usage, all_months=v.flag(all_months, "all_months")
        )
        return out

    async def _reserve(self, estimate_usd: Any, ttl: Any, user: Any, dry: bool) -> Reservation:
        est = _estimate(estimate_usd)
        seconds = v.ttl(ttl)
        scope: Scope = await self._core.ascope()
        scope.require_tenant()
        uid = user
        if user is not None and not isinstance(user, UUID):
            uid = await self._core.arun(_plans.resolve_user, user)
        rid = uuid7()
        rows = await arun_statements(
            self._core.db, scope, [_calls.reserve(rid, est, seconds, uid, dry_run=dry)]
        )
        return _calls.reservation(rid, est, rows[0])

    async def reserve(
        self,
        estimate_usd: Decimal | int | float | str | None,
        *,
        ttl: float = 600,
        user: UUID | str | None = None,
    ) -> Reservation:
        return await self._reserve(estimate_usd, ttl, user, False)

    async def check(
        self, estimate_usd: Decimal | int | float | str | None, *, user: UUID | str | None = None
    ) -> Reservation:
        return await self._reserve(estimate_usd, 600, user, True)

    async def settle(self, reservation_id: UUID | str, cost_usd: Decimal | int | float | str | None) -> int:
        rid = v.required_id(reservation_id, "reservation_id")
        cost = None if cost_usd is None else v.money(cost_usd, "cost_usd", allow_zero=True)
        scope = await self._core.ascope()
        rows = await arun_statements(self._core.db, scope, [_calls.settle(rid, cost)])
        return int(rows[0][0][0])

    async def release(self, reservation_id: UUID | str) -> int:
        rid = v.required_id(reservation_id, "reservation_id")
        scope = await self._core.ascope()
        rows = await arun_statements(self._core.db, scope, [_calls.settle(rid, Decimal(0), cancel=True)])
        return int(rows[0][0][0])
