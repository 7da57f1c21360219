"""The guard instrumented model calls pass before they go out: rate limits and budgets.

    ticket = admit(core, provider="openai", model="gpt-4o-mini", request_type="chat",
                   request=kwargs)           # may raise RateLimited / BudgetExceeded
    ...call the provider...
    if ticket: ticket.settle(tokens=usage_total, cost_usd=cost)   # or ticket.cancel()

`admit` returns None at once (no database round trip) when the scope's tenant has no
limits or budgets that apply: the definitions are cached per tenant for
`llmbase.limits._defs.TTL` seconds (5) and invalidated by `client.limits` / `client.budgets`
changes made in this process; other processes see a change within that delay.

Otherwise one transaction counts the call (1 request and its estimated tokens) against
every applicable rate limit and reserves its estimated cost against every applicable
budget, all or nothing: when anything refuses, the transaction rolls back and the error
says which limit or budget, its remaining room and when to retry.

The user a call counts for is the client's user, else the user of the innermost
`client.context(user=...)` block (created if new, as the request log does).

An unknown price: a hard budget refuses the call unless it sets `unpriced_call_usd` (what
such a call reserves and, when the actual cost stays unknown, spends); a soft budget
admits it. The database being unreachable (or any internal failure of the guard) admits
the call and logs a warning: the guard never takes an application down with it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from .._context import current_ids
from .._ids import uuid7
from ..db import Database, Scope
from ..errors import BudgetExceeded, RateLimited
from ..pricing import pricer
from ..stores import users
from ..stores._common import Ctx
from ..stores._plan import arun, run
from . import _calls, _defs
from ._sql import Rows, Statement, arun_decided, arun_statements, run_decided, run_statements
from ._types import LimitResult, Reservation
from .estimate import Estimate, estimate

__all__ = ["RESERVATION_TTL", "AsyncTicket", "Ticket", "aadmit", "admit"]

_log = logging.getLogger("llmbase.limits")

#: Seconds a reservation holds its estimate when never settled (then maintenance releases it).
RESERVATION_TTL = 600

Counter = tuple[UUID, UUID, Any]  # (limit id, subject key, window start)


# -- the user a call counts for --------------------------------------------------------------
_users_lock = threading.Lock()
_users: weakref.WeakKeyDictionary[Database, dict[tuple[UUID, str], UUID]] = weakref.WeakKeyDictionary()


def _context_user() -> UUID | str | None:
    ids = current_ids()
    uid = ids.get("user_id")
    if isinstance(uid, UUID):
        return uid
    ext = ids.get("user")
    return ext if isinstance(ext, str) and ext else None


def _known_user(db: Database, tenant: UUID, ext: str) -> UUID | None:
    with _users_lock:
        return _users.get(db, {}).get((tenant, ext))


def _remember_user(db: Database, tenant: UUID, ext: str, uid: UUID) -> None:
    with _users_lock:
        per = _users.setdefault(db, {})
        if len(per) > 100_000:
            per.clear()
        per[(tenant, ext)] = uid


def _user(db: Database, scope: Scope, defs: _defs.Defs) -> UUID | None:
    if scope.user_id is not None or not defs.per_user:
        return scope.user_id
    ref = _context_user()
    if ref is None or isinstance(ref, UUID):
        return ref
    tid = scope.require_tenant()
    uid = _known_user(db, tid, ref)
    if uid is None:
        uid = run(db, Scope(tid), users.ensure(Ctx(Scope(tid), db.settings), ref)).id
        _remember_user(db, tid, ref, uid)
    return uid


async def _auser(db: Database, scope: Scope, defs: _defs.Defs) -> UUID | None:
    if scope.user_id is not None or not defs.per_user:
        return scope.user_id
    ref = _context_user()
    if ref is None or isinstance(ref, UUID):
        return ref
    tid = scope.require_tenant()
    uid = _known_user(db, tid, ref)
    if uid is None:
        uid = (await arun(db, Scope(tid), users.ensure(Ctx(Scope(tid), db.settings), ref))).id
        _remember_user(db, tid, ref, uid)
    return uid


# -- one admission -----------------------------------------------------------------------------
@dataclass
class _Call:
    scope: Scope
    user: UUID | None
    limits: bool
    budgets: bool
    est: Estimate
    rid: UUID

    @property
    def p_user(self) -> UUID | None:
        # a tenant-wide client counts for the context's user; a user client for itself
        return self.user if self.scope.user_id is None else None

    def statements(self) -> list[Statement]:
        out: list[Statement] = []
        if self.limits:
            out.append(_calls.consume(1, self.est.tokens, None, self.p_user, dry_run=False))
        if self.budgets:
            out.append(_calls.reserve(self.rid, self.est.cost_usd, RESERVATION_TTL, self.p_user))
        return out

    def results(self, rows: list[Rows]) -> tuple[LimitResult | None, Reservation | None]:
        i = 0
        lim = res = None
        if self.limits:
            lim = _calls.limit_result(rows[0], 1, self.est.tokens)
            i = 1
        if self.budgets:
            res = _calls.reservation(self.rid, self.est.cost_usd, rows[i])
        return lim, res

    def decide(self, rows: list[Rows]) -> bool:
        lim, res = self.results(rows)
        return (lim is None or lim.allowed) and (res is None or res.allowed)

    def finish(self, rows: list[Rows]) -> tuple[list[Counter], list[Counter], UUID | None]:
        lim, res = self.results(rows)
        if lim is not None:
            lim.raise_for_limit()
        if res is not None:
            res.raise_for_budget()
            if res.flagged:
                over = [b for b in res.budgets if b.over_cap and b.mode == "soft"]
                for b in over:
                    _log.warning(
                        "soft budget %s exceeded (%s): spent %s + reserved %s + estimate %s > cap %s USD",
                        b.budget_id,
                        b.scope,
                        b.spent_usd,
                        b.reserved_usd,
                        b.amount_usd,
                        b.cap_usd,
                        extra={"budget_id": str(b.budget_id), "tenant_id": str(self.scope.tenant_id)},
                    )
        requests: list[Counter] = []
        tokens: list[Counter] = []
        for s in lim.limits if lim is not None else ():
            target = requests if s.metric == "requests" else tokens
            target.append((s.limit_id, s.subject_key, s.window_start))
        rid = self.rid if res is not None and res.budgets else None
        return requests, tokens, rid


def _plan_call(
    db: Database, scope: Scope, defs: _defs.Defs, user: UUID | None, overrides: Any, kw: Mapping[str, Any]
) -> _Call | None:
    has_limits = any(True for _ in defs.limits_for(user))
    has_budgets = any(True for _ in defs.budgets_for(user))
    if not has_limits and not has_budgets:
        return None
    est = estimate(
        kw["request"] if isinstance(kw["request"], Mapping) else {},
        provider=kw["provider"],
        model=kw["model"],
        request_type=kw["request_type"],
        overrides=overrides,
    )
    return _Call(scope, user, has_limits, has_budgets, est, uuid7())


def admit(
    core: Any,
    *,
    provider: str | None,
    model: str | None,
    request_type: str,
    request: Mapping[str, Any],
) -> Ticket | None:
    """Count a call against the scope's rate limits and reserve its estimated cost.

    Raises RateLimited or BudgetExceeded (nothing counted, nothing reserved); returns None
    when nothing applies, else a Ticket to settle (or cancel) after the call."""
    kw = {"provider": provider, "model": model, "request_type": request_type, "request": request}
    try:
        scope: Scope = core.scope()
        if scope.tenant_id is None:
            return None
        db: Database = core.db
        defs = _defs.definitions(db, scope.tenant_id)
        if defs.empty:
            return None
        user = _user(db, scope, defs)
        overrides = None
        if any(True for _ in defs.budgets_for(user)):
            overrides = pricer(db).overrides(scope.tenant_id)
        call = _plan_call(db, scope, defs, user, overrides, kw)
        if call is None:
            return None
        rows, _ = run_decided(db, scope, call.statements(), call.decide)
        req, tok, rid = call.finish(rows)
    except (RateLimited, BudgetExceeded):
        raise
    except Exception:
        _log.warning("limits guard failed; the call is admitted unchecked", exc_info=True)
        return None
    return Ticket(db, scope, call.est, req, tok, rid)


async def aadmit(
    core: Any,
    *,
    provider: str | None,
    model: str | None,
    request_type: str,
    request: Mapping[str, Any],
) -> AsyncTicket | None:
    """Async `admit`."""
    kw = {"provider": provider, "model": model, "request_type": request_type, "request": request}
    try:
        scope: Scope = await core.ascope()
        if scope.tenant_id is None:
            return None
        db: Database = core.db
        defs = await _defs.adefinitions(db, scope.tenant_id)
        if defs.empty:
            return None
        user = await _auser(db, scope, defs)
        overrides = None
        if any(True for _ in defs.budgets_for(user)):
            overrides = await asyncio.to_thread(pricer(db).overrides, scope.tenant_id)
        call = _plan_call(db, scope, defs, user, overrides, kw)
        if call is None:
            return None
        rows, _ = await arun_decided(db, scope, call.statements(), call.decide)
        req, tok, rid = call.finish(rows)
    except (RateLimited, BudgetExceeded):
        raise
    except Exception:
        _log.warning("limits guard failed; the call is admitted unchecked", exc_info=True)
        return None
    return AsyncTicket(db, scope, call.est, req, tok, rid)


# -- tickets -----------------------------------------------------------------------------------
def _tokens(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _cost(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    return d if d.is_finite() and d >= 0 else None


class _TicketBase:
    """An admitted call: what it counted and reserved, to correct when its usage is known."""

    def __init__(
        self,
        db: Database,
        scope: Scope,
        est: Estimate,
        requests: Sequence[Counter],
        tokens: Sequence[Counter],
        reservation: UUID | None,
    ) -> None:
        self._db = db
        self._scope = scope
        self.estimate = est
        self._requests = list(requests)
        self._tokens = list(tokens)
        self.id: UUID | None = reservation
        self._done = False
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    def _settle_statements(self, tokens: Any, cost_usd: Any) -> list[Statement]:
        out: list[Statement] = []
        actual = _tokens(tokens)
        if self._tokens and actual is not None and actual != self.estimate.tokens:
            out.append(_calls.adjust(self._tokens, actual - self.estimate.tokens))
        if self.id is not None:
            out.append(_calls.settle(self.id, _cost(cost_usd)))
        return out

    def _cancel_statements(self) -> list[Statement]:
        out: list[Statement] = []
        if self._requests:
            out.append(_calls.adjust(self._requests, -1))
        if self._tokens:
            out.append(_calls.adjust(self._tokens, -self.estimate.tokens))
        if self.id is not None:
            out.append(_calls.settle(self.id, Decimal(0), cancel=True))
        return out


class Ticket(_TicketBase):
    """Returned by `admit`. `id`: the budget reservation (None when no budget applies)."""

    def settle(self, *, tokens: int | None, cost_usd: Decimal | None) -> None:
        """Correct token counters to the actual tokens and the budgets to the actual cost
        (None: keep the estimate). Once; never raises."""
        if not self._claim():
            return
        try:
            stmts = self._settle_statements(tokens, cost_usd)
            if stmts:
                run_statements(self._db, self._scope, stmts)
        except Exception:
            _log.warning("settling limits ticket %s failed", self.id, exc_info=True)

    def cancel(self) -> None:
        """The call did not happen or failed without usage: give back what was counted and
        reserved. Once; never raises."""
        if not self._claim():
            return
        try:
            stmts = self._cancel_statements()
            if stmts:
                run_statements(self._db, self._scope, stmts)
        except Exception:
            _log.warning("cancelling limits ticket %s failed", self.id, exc_info=True)


class AsyncTicket(_TicketBase):
    """Returned by `aadmit`: `Ticket` with awaitable methods."""

    async def settle(self, *, tokens: int | None, cost_usd: Decimal | None) -> None:
        if not self._claim():
            return
        try:
            stmts = self._settle_statements(tokens, cost_usd)
            if stmts:
                await arun_statements(self._db, self._scope, stmts)
        except Exception:
            _log.warning("settling limits ticket %s failed", self.id, exc_info=True)

    async def cancel(self) -> None:
        if not self._claim():
            return
        try:
            stmts = self._cancel_statements()
            if stmts:
                await arun_statements(self._db, self._scope, stmts)
        except Exception:
            _log.warning("cancelling limits ticket %s failed", self.id, exc_info=True)
