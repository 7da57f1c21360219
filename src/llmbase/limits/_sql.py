"""One round trip per limits call: scope, statements and commit in one simple-query message.

The hot path (`consume`, `check`, the guard) must not pay four round trips (BEGIN, the
scope's set_config, the call, COMMIT). A pooled connection is switched to autocommit for
the call and sent one message of several statements: PostgreSQL runs such a message as
one implicit transaction (all or nothing), so the scope set with set_config(..., true)
lives exactly as long as the call. Values are bound by psycopg's client-side cursor
(quoted by libpq, never formatted into the SQL by hand).

`synchronous_commit` is off for these transactions: a counter or reservation committed in
the last few hundred milliseconds before a server crash may be lost (the counters are
UNLOGGED anyway); it is never half-applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerr

from ..config import APP_ROLE
from ..db import Database, Scope
from ..errors import DatabaseUnavailable, LLMBaseError, PermissionDenied, ValidationError

__all__ = ["Statement", "arun_decided", "arun_statements", "run_decided", "run_statements"]

Statement = tuple[str, Sequence[Any]]
Rows = list[tuple[Any, ...]]
Decide = Callable[[list[Rows]], bool]

_SCOPE = (
    "SELECT set_config('role', %s, true), set_config('llmbase.tenant_id', %s, true),"
    " set_config('llmbase.user_id', %s, true), set_config('llmbase.admin', '', true),"
    " set_config('synchronous_commit', 'off', true)"
)


def _message(scope: Scope, statements: Sequence[Statement], *, commit: bool) -> tuple[str, list[Any]]:
    parts = ["BEGIN", _SCOPE]
    params: list[Any] = [
        APP_ROLE,
        str(scope.tenant_id) if scope.tenant_id else "",
        str(scope.user_id) if scope.user_id else "",
    ]
    for q, p in statements:
        parts.append(q)
        params.extend(p)
    if commit:
        parts.append("COMMIT")
    return "; ".join(parts), params


def translate(exc: psycopg.Error) -> LLMBaseError:
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseUnavailable(str(exc))
    if isinstance(exc, pgerr.InsufficientPrivilege):
        return PermissionDenied(exc.diag.message_primary or "permission denied")
    if isinstance(exc, pgerr.InvalidParameterValue | pgerr.DataError | pgerr.CheckViolation):
        return ValidationError(exc.diag.message_primary or "invalid value")
    raise exc


def _collect(cur: psycopg.ClientCursor[Any], n: int) -> list[Rows]:
    # result sets: BEGIN, the scope, then one per statement
    cur.nextset()
    out: list[Rows] = []
    for _ in range(n):
        cur.nextset()
        out.append(cur.fetchall())
    return out


def run_statements(db: Database, scope: Scope, statements: Sequence[Statement]) -> list[Rows]:
    """Run `statements` in one transaction as `scope`, committed in the same round trip."""
    rows, _ = run_decided(db, scope, statements, None)
    return rows


def run_decided(
    db: Database, scope: Scope, statements: Sequence[Statement], decide: Decide | None
) -> tuple[list[Rows], bool]:
    """Run `statements`, then COMMIT when `decide(rows)` is true, else ROLLBACK (two round
    trips; the rows stay locked in between, so the decision is exact). decide=None commits
    in the same message (one round trip)."""
    try:
        with db.pool().connection() as conn:
            conn.autocommit = True
            try:
                q, params = _message(scope, statements, commit=decide is None)
                cur = psycopg.ClientCursor(conn)
                cur.execute(q, params)
                rows = _collect(cur, len(statements))
                ok = True
                if decide is not None:
                    ok = bool(decide(rows))
                    conn.execute("COMMIT" if ok else "ROLLBACK")
                return rows, ok
            except BaseException:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    conn.autocommit = False
    except psycopg.Error as exc:
        raise translate(exc) from exc


async def _acollect(cur: psycopg.AsyncClientCursor[Any], n: int) -> list[Rows]:
    cur.nextset()
    out: list[Rows] = []
    for _ in range(n):
        cur.nextset()
        out.append(await cur.fetchall())
    return out


async def arun_statements(db: Database, scope: Scope, statements: Sequence[Statement]) -> list[Rows]:
    """Async `run_statements` (committed in the same message)."""
    rows, _ = await arun_decided(db, scope, statements, None)
    return rows


async def arun_decided(
    db: Database, scope: Scope, statements: Sequence[Statement], decide: Decide | None
) -> tuple[list[Rows], bool]:
    """Async `run_decided`; decide=None commits in the same message."""
    pool = await db.apool()
    try:
        async with pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                q, params = _message(scope, statements, commit=decide is None)
                cur = psycopg.AsyncClientCursor(conn)
                await cur.execute(q, params)
                rows = await _acollect(cur, len(statements))
                ok = True
                if decide is not None:
                    ok = bool(decide(rows))
                    await conn.execute("COMMIT" if ok else "ROLLBACK")
                return rows, ok
            except BaseException:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await conn.execute("ROLLBACK")
                raise
            finally:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    await conn.set_autocommit(False)
    except psycopg.Error as exc:
        raise translate(exc) from exc
