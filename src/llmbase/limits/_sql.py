"""One round trip per limits call: scope and statements pipelined as prepared statements.

The hot path (`consume`, `check`, the guard) must not pay four round trips (BEGIN, the
scope's set_config, the call, COMMIT), nor parse and plan its SQL on every call. A pooled
connection enters libpq pipeline mode and sends, in one write: Bind/Execute of the prepared
scope statement (role, tenant and user with set_config(..., true)), Bind/Execute of each
prepared statement, then Sync. Without an explicit BEGIN, PostgreSQL runs everything up to
the Sync as one implicit transaction (all or nothing, committed at the Sync), so the scope
lives exactly as long as the call. The statements are prepared (Parse) on a connection's
first use, in the same pipeline. Values travel as parameters (text format, typed by the
prepared statement); results come back in binary and are loaded by psycopg's loaders.

When the caller decides after seeing the rows (`run_decided`, the guard: rate limits and
budgets in one transaction, rolled back when either refuses), the pipeline starts with
BEGIN and the COMMIT or ROLLBACK follows in a second round trip; the rows stay locked in
between, so the decision is exact.

`synchronous_commit` is off for these transactions: a counter or reservation committed in
the last few hundred milliseconds before a server crash may be lost (the counters are
UNLOGGED anyway); it is never half-applied.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import errors as pgerr
from psycopg import generators, pq
from psycopg.abc import PQGen
from psycopg.adapt import Transformer

from ..config import APP_ROLE
from ..db import Database, Scope
from ..errors import DatabaseUnavailable, LLMBaseError, PermissionDenied, ValidationError

__all__ = ["Statement", "arun_decided", "arun_statements", "run_decided", "run_statements"]

#: (SQL with $1.. placeholders, parameters). The SQL is prepared once per connection.
Statement = tuple[str, Sequence[Any]]
Rows = list[tuple[Any, ...]]
Decide = Callable[[list[Rows]], bool]

_SCOPE = (
    "SELECT set_config('role', $1, true), set_config('llmbase.tenant_id', $2, true),"
    " set_config('llmbase.user_id', $3, true), set_config('llmbase.admin', '', true),"
    " set_config('synchronous_commit', 'off', true)"
)
_ROLE = APP_ROLE.encode()

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_IDLE = pq.TransactionStatus.IDLE

# -- prepared statement names ------------------------------------------------------------
_names_lock = threading.Lock()
_names: dict[str, bytes] = {}
#: statement names prepared on each connection (a connection is used by one thread at once)
_prepared: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()


def _name(sql: str) -> bytes:
    name = _names.get(sql)
    if name is None:
        with _names_lock:
            name = _names.setdefault(sql, f"llmbase_limits_{len(_names)}".encode())
    return name


def _prepared_on(conn: Any) -> set[bytes]:
    got = _prepared.get(conn)
    if got is None:
        with _names_lock:
            got = _prepared.setdefault(conn, set())
    return got


# -- parameters ----------------------------------------------------------------------------
def _array_item(v: Any) -> str:
    if v is None:
        return "NULL"
    s = v.isoformat() if isinstance(v, datetime | date) else str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(v: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (the prepared statement gives its type)."""
    if v is None:
        return None
    if v is True:
        return b"t"
    if v is False:
        return b"f"
    if isinstance(v, int | UUID | Decimal | str):
        return str(v).encode()
    if isinstance(v, datetime | date):
        return v.isoformat().encode()
    if isinstance(v, list | tuple):
        return ("{" + ",".join(_array_item(x) for x in v) + "}").encode()
    raise TypeError(f"unsupported parameter type {type(v).__name__}")


def _scope_params(scope: Scope) -> list[bytes | None]:
    return [
        _ROLE,
        str(scope.tenant_id).encode() if scope.tenant_id else b"",
        str(scope.user_id).encode() if scope.user_id else b"",
    ]


# -- errors --------------------------------------------------------------------------------
def translate(exc: psycopg.Error) -> LLMBaseError:
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseUnavailable(str(exc))
    if isinstance(exc, pgerr.InsufficientPrivilege):
        return PermissionDenied(exc.diag.message_primary or "permission denied")
    if isinstance(exc, pgerr.InvalidParameterValue | pgerr.DataError | pgerr.CheckViolation):
        return ValidationError(exc.diag.message_primary or "invalid value")
    raise exc


class _Stale(Exception):
    """A statement this process believed prepared is gone (DEALLOCATE/DISCARD): retry."""


# -- the pipeline ----------------------------------------------------------------------------
class _Batch:
    """What one call sends, and how to read what comes back."""

    def __init__(self, scope: Scope, statements: Sequence[Statement], begin: bool) -> None:
        self.scope = scope
        self.statements = [(_name(q), q, p) for q, p in statements]
        self.begin = begin
        self.parsed: list[bytes] = []

    def send(self, pgconn: Any, have: set[bytes]) -> int:
        """Queue everything on a connection in pipeline mode; the number of results due."""
        n = 0
        scope_name = _name(_SCOPE)
        todo = [] if scope_name in have else [(scope_name, _SCOPE)]
        todo += [(name, q) for name, q, _ in self.statements if name not in have]
        seen: set[bytes] = set()
        for name, q in todo:
            if name not in seen:
                seen.add(name)
                pgconn.send_prepare(name, q.encode())
                self.parsed.append(name)
                n += 1
        if self.begin:
            pgconn.send_query_params(b"BEGIN", None)
            n += 1
        pgconn.send_query_prepared(scope_name, _scope_params(self.scope))
        n += 1
        for name, _, params in self.statements:
            pgconn.send_query_prepared(name, [_text(v) for v in params], None, 1)
            n += 1
        pgconn.pipeline_sync()
        return n

    def read(self, conn: Any, results: list[list[Any]], have: set[bytes]) -> list[Rows]:
        """Rows of each statement; raises the first error the server reported."""
        k = len(self.parsed)
        fresh = {
            name
            for name, res in zip(self.parsed, results[:k], strict=True)
            if res and res[0].status == pq.ExecStatus.COMMAND_OK
        }
        have |= fresh
        first_error = None
        for res in results:
            for r in res:
                if r.status == pq.ExecStatus.FATAL_ERROR and first_error is None:
                    first_error = r
        if first_error is not None:
            exc = pgerr.error_from_result(first_error, encoding=conn.info.encoding)
            if isinstance(exc, pgerr.InvalidSqlStatementName):
                # Something deallocated our statements (psycopg's DEALLOCATE ALL after a
                # rollback, DISCARD ALL): forget them, but not the ones this batch prepared.
                have.clear()
                have |= fresh
                raise _Stale() from exc
            raise exc
        out: list[Rows] = []
        tx = Transformer(conn)
        for res in results[len(results) - len(self.statements) :]:
            r = res[-1]
            if r.status != pq.ExecStatus.TUPLES_OK:
                out.append([])
                continue
            tx.set_pgresult(r)
            out.append(tx.load_rows(0, r.ntuples, tuple))
        return out


def _communicate(pgconn: Any, n: int) -> PQGen[list[list[Any]]]:
    """Flush the pipeline and read the results of its `n` commands and its Sync: one
    generator, so a thread waits (and gives up the GIL) only while the server works."""
    yield from generators.send(pgconn)
    results = []
    for _ in range(n):
        results.append((yield from generators.fetch_many(pgconn)))
    sync = yield from generators.fetch_many(pgconn)
    if not sync or sync[0].status != _SYNC:
        raise psycopg.OperationalError("pipeline out of step")
    return results


def _pipeline(conn: psycopg.Connection[Any], batch: _Batch) -> list[Rows]:
    pgconn = conn.pgconn
    have = _prepared_on(conn)
    batch.parsed = []
    pgconn.enter_pipeline_mode()
    try:
        results = conn.wait(_communicate(pgconn, batch.send(pgconn, have)))
    except BaseException:
        conn.close()  # the protocol state is unknown: the pool replaces the connection
        raise
    pgconn.exit_pipeline_mode()
    return batch.read(conn, results, have)


async def _apipeline(conn: psycopg.AsyncConnection[Any], batch: _Batch) -> list[Rows]:
    pgconn = conn.pgconn
    have = _prepared_on(conn)
    batch.parsed = []
    pgconn.enter_pipeline_mode()
    try:
        results = await conn.wait(_communicate(pgconn, batch.send(pgconn, have)))
    except BaseException:
        await conn.close()
        raise
    pgconn.exit_pipeline_mode()
    return batch.read(conn, results, have)


def _finish(conn: psycopg.Connection[Any], sql: bytes) -> None:
    pgconn = conn.pgconn
    pgconn.send_query(sql)
    for r in conn.wait(generators.execute(pgconn)):
        if r.status == pq.ExecStatus.FATAL_ERROR:
            raise pgerr.error_from_result(r, encoding=conn.info.encoding)


async def _afinish(conn: psycopg.AsyncConnection[Any], sql: bytes) -> None:
    pgconn = conn.pgconn
    pgconn.send_query(sql)
    for r in await conn.wait(generators.execute(pgconn)):
        if r.status == pq.ExecStatus.FATAL_ERROR:
            raise pgerr.error_from_result(r, encoding=conn.info.encoding)


def run_statements(db: Database, scope: Scope, statements: Sequence[Statement]) -> list[Rows]:
    """Run `statements` in one transaction as `scope`, committed in the same round trip."""
    rows, _ = run_decided(db, scope, statements, None)
    return rows


def run_decided(
    db: Database, scope: Scope, statements: Sequence[Statement], decide: Decide | None
) -> tuple[list[Rows], bool]:
    """Run `statements`, then COMMIT when `decide(rows)` is true, else ROLLBACK (two round
    trips; the rows stay locked in between, so the decision is exact). decide=None commits
    at the end of the pipeline (one round trip)."""
    batch = _Batch(scope, statements, decide is not None)
    try:
        with db.pool().connection() as conn:
            for attempt in (1, 2):
                try:
                    rows = _pipeline(conn, batch)
                    break
                except _Stale:
                    if attempt == 2:
                        raise
                finally:
                    if (
                        not conn.closed
                        and conn.pgconn.transaction_status != _IDLE
                        and (decide is None or conn.pgconn.transaction_status != pq.TransactionStatus.INTRANS)
                    ):
                        _finish(conn, b"ROLLBACK")
            ok = decide is None
            if decide is not None:
                try:
                    ok = bool(decide(rows))
                finally:
                    _finish(conn, b"COMMIT" if ok else b"ROLLBACK")
            return rows, ok
    except _Stale as exc:
        raise DatabaseUnavailable("prepared statements keep disappearing") from exc
    except psycopg.Error as exc:
        raise translate(exc) from exc


async def arun_statements(db: Database, scope: Scope, statements: Sequence[Statement]) -> list[Rows]:
    """Async `run_statements` (committed in the same round trip)."""
    rows, _ = await arun_decided(db, scope, statements, None)
    return rows


async def arun_decided(
    db: Database, scope: Scope, statements: Sequence[Statement], decide: Decide | None
) -> tuple[list[Rows], bool]:
    """Async `run_decided`; decide=None commits at the end of the pipeline."""
    batch = _Batch(scope, statements, decide is not None)
    pool = await db.apool()
    try:
        async with pool.connection() as conn:
            for attempt in (1, 2):
                try:
                    rows = await _apipeline(conn, batch)
                    break
                except _Stale:
                    if attempt == 2:
                        raise
                finally:
                    if (
                        not conn.closed
                        and conn.pgconn.transaction_status != _IDLE
                        and (decide is None or conn.pgconn.transaction_status != pq.TransactionStatus.INTRANS)
                    ):
                        await _afinish(conn, b"ROLLBACK")
            ok = decide is None
            if decide is not None:
                try:
                    ok = bool(decide(rows))
                finally:
                    await _afinish(conn, b"COMMIT" if ok else b"ROLLBACK")
            return rows, ok
    except _Stale as exc:
        raise DatabaseUnavailable("prepared statements keep disappearing") from exc
    except psycopg.Error as exc:
        raise translate(exc) from exc
