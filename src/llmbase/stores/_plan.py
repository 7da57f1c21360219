"""Plans: a store operation written once as a generator of queries, run by sync or async shells.

A plan yields `Query` objects and receives each one's result; its return value is the
operation's result. The runners own the transaction; plans never touch a connection.

A query with `copy_rows` is a `COPY ... FROM STDIN`: the runner streams the rows with
`write_row` (binary COPY needs `copy_types`, one type name per column) and the result is
the number of rows copied.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import psycopg
from psycopg import errors as pgerr
from psycopg import sql
from psycopg.rows import class_row, dict_row, tuple_row

from ..db import Database, Scope
from ..errors import ConflictError, LLMBaseError, NotFound, PermissionDenied, ValidationError

__all__ = ["Plan", "Query", "arun", "run"]

T = TypeVar("T")

Fetch = Literal["one", "optional", "all", "rowcount", "none"]


@dataclass(frozen=True)
class Query:
    """One statement: SQL (a literal or psycopg.sql composition), parameters, result shape."""

    sql: str | sql.Composable
    params: Sequence[Any] | Mapping[str, Any] | None = None
    fetch: Fetch = "all"
    row: type | None = None  # dataclass for class_row; None = dicts
    #: raised when fetch='one' finds nothing (the object is missing or not visible)
    not_found: NotFound | None = None
    #: how to report a foreign-key violation (a referenced object missing or not visible)
    fk_not_found: NotFound | None = None
    conflict: str | None = None
    tuples: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: rows for a `COPY ... FROM STDIN` statement (the result is the number of rows copied)
    copy_rows: Iterable[Sequence[Any]] | None = None
    #: PostgreSQL type names of the copied columns (required by FORMAT BINARY). A column
    #: typed "bytea" here takes values already in the target column's binary format.
    copy_types: Sequence[str | int] | None = None

    def row_factory(self) -> Any:
        if self.tuples:
            return tuple_row
        if self.row is not None:
            return class_row(self.row)
        return dict_row

    def shape(self, rows: list[Any] | None, rowcount: int) -> Any:
        if self.fetch == "rowcount":
            return rowcount
        if self.fetch == "none":
            return None
        assert rows is not None
        if self.fetch == "all":
            return rows
        if not rows:
            if self.fetch == "one":
                raise self.not_found or NotFound("row", "?")
            return None
        return rows[0]

    def translate(self, exc: psycopg.Error) -> LLMBaseError:
        """Map a database error to the SDK's error tree."""
        diag = exc.diag
        if isinstance(exc, pgerr.ForeignKeyViolation):
            return self.fk_not_found or NotFound("referenced object", diag.constraint_name or "?")
        if isinstance(exc, pgerr.UniqueViolation):
            return ConflictError(self.conflict or f"already exists ({diag.constraint_name})")
        if isinstance(exc, pgerr.InsufficientPrivilege):
            # RLS WITH CHECK failures and missing grants: the scope may not do this.
            if self.fk_not_found is not None and "row-level security" in str(exc):
                return self.fk_not_found
            return PermissionDenied(diag.message_primary or "permission denied")
        if isinstance(exc, pgerr.CheckViolation | pgerr.NotNullViolation):
            column = diag.column_name or diag.constraint_name
            return ValidationError(diag.message_primary or "invalid value", field=column)
        if isinstance(exc, pgerr.DataError):
            return ValidationError(diag.message_primary or "invalid value")
        if isinstance(exc, pgerr.SerializationFailure):
            return ConflictError("concurrent change, retry")
        raise exc


Plan = Generator[Query, Any, T]


def run(db: Database, scope: Scope, plan: Plan[T]) -> T:
    """Run a plan in one transaction acting as `scope`."""
    with db.transaction(scope) as conn:
        try:
            q = next(plan)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        while True:
            try:
                cur = conn.cursor(row_factory=q.row_factory())
                if q.copy_rows is not None:
                    with cur.copy(q.sql) as cp:  # type: ignore[arg-type]
                        if q.copy_types is not None:
                            cp.set_types(q.copy_types)
                        for r in q.copy_rows:
                            cp.write_row(r)
                    result = cur.rowcount
                else:
                    cur.execute(q.sql, q.params)  # type: ignore[arg-type]
                    rows = cur.fetchall() if q.fetch in ("one", "optional", "all") else None
                    result = q.shape(rows, cur.rowcount)
            except psycopg.Error as exc:
                raise q.translate(exc) from exc
            try:
                q = plan.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


async def arun(db: Database, scope: Scope, plan: Plan[T]) -> T:
    """Async twin of `run`: the same plan, awaited I/O."""
    async with db.atransaction(scope) as conn:
        try:
            q = next(plan)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        while True:
            try:
                cur = conn.cursor(row_factory=q.row_factory())
                if q.copy_rows is not None:
                    async with cur.copy(q.sql) as cp:  # type: ignore[arg-type]
                        if q.copy_types is not None:
                            cp.set_types(q.copy_types)
                        for r in q.copy_rows:
                            await cp.write_row(r)
                    result = cur.rowcount
                else:
                    await cur.execute(q.sql, q.params)  # type: ignore[arg-type]
                    rows = await cur.fetchall() if q.fetch in ("one", "optional", "all") else None
                    result = q.shape(rows, cur.rowcount)
            except psycopg.Error as exc:
                raise q.translate(exc) from exc
            try:
                q = plan.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
