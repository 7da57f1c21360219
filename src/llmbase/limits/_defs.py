"""In-process cache of each tenant's limit and budget definitions (for the guard).

The guard reads a tenant's definitions at most every TTL seconds (5 by default), so a call
in a scope without limits or budgets costs no database round trip. `set`/`delete` through
this process invalidate the tenant at once; another process sees a change within TTL.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from ..db import Database, Scope
from ..stores._common import Ctx
from ..stores._plan import Plan, arun, run
from . import _plans
from ._types import Budget, RateLimit

__all__ = ["TTL", "Defs", "adefinitions", "definitions", "invalidate"]

TTL = 5.0


@dataclass(frozen=True, slots=True)
class Defs:
    limits: tuple[RateLimit, ...]
    budgets: tuple[Budget, ...]

    def limits_for(self, user: UUID | None) -> Iterator[RateLimit]:
        """The limits a call without an API key in this user's scope is counted against."""
        return (lim for lim in self.limits if lim.subject == "tenant" or (user and lim.user_id == user))

    def budgets_for(self, user: UUID | None) -> Iterator[Budget]:
        return (b for b in self.budgets if b.user_id is None or b.user_id == user)

    @property
    def per_user(self) -> bool:
        """Whether any definition depends on who the user is."""
        return any(x.per_user or x.user_id is not None for x in self.limits) or any(
            x.per_user or x.user_id is not None for x in self.budgets
        )

    @property
    def empty(self) -> bool:
        return not self.limits and not self.budgets


EMPTY = Defs((), ())

_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[Database, dict[UUID, tuple[float, Defs]]] = weakref.WeakKeyDictionary()


def _plan(ctx: Ctx) -> Plan[Defs]:
    limits = yield from _plans.list_limits(ctx)
    budgets = yield from _plans.list_budgets(ctx)
    return Defs(tuple(limits), tuple(budgets))


def _cached(db: Database, tenant: UUID) -> Defs | None:
    with _lock:
        hit = _cache.get(db, {}).get(tenant)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def _store(db: Database, tenant: UUID, defs: Defs) -> None:
    with _lock:
        _cache.setdefault(db, {})[tenant] = (time.monotonic() + TTL, defs)


def definitions(db: Database, tenant: UUID) -> Defs:
    defs = _cached(db, tenant)
    if defs is None:
        scope = Scope(tenant)
        defs = run(db, scope, _plan(Ctx(scope, db.settings)))
        _store(db, tenant, defs)
    return defs


async def adefinitions(db: Database, tenant: UUID) -> Defs:
    defs = _cached(db, tenant)
    if defs is None:
        scope = Scope(tenant)
        defs = await arun(db, scope, _plan(Ctx(scope, db.settings)))
        _store(db, tenant, defs)
    return defs


def invalidate(tenant: UUID | None = None) -> None:
    """Forget cached definitions of a tenant (None: all) in every database of the process."""
    with _lock:
        for per_db in list(_cache.values()):
            if tenant is None:
                per_db.clear()
            else:
                per_db.pop(tenant, None)
