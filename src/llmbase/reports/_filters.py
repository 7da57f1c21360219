"""Report filters: resolve tenant/user references in scope, compile WHERE clauses, and pick
the rollup rows (day grain for whole UTC days, hour grain for the partial days at the
edges) that cover a time range."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString
from uuid import UUID

from psycopg import sql

from ..errors import NotFound, PermissionDenied, ValidationError
from ..stores import tenants
from ..stores._common import Ctx
from ..stores._plan import Plan, Query
from ._time import When, ceil_day, ceil_hour, floor_day, floor_hour, parse_when

__all__ = ["NO_USER", "Span", "Where", "pieces", "resolve", "rollup_source"]

#: Rollups store calls without a user under the all-zero uuid.
NO_USER = UUID(int=0)

Grain = Literal["hour", "day"]
Period = Literal["hour", "day", "month"]


@dataclass(frozen=True)
class Span:
    """Resolved filters of one report call."""

    tenant_id: UUID | None  # None: every tenant (operator scope only)
    user_ids: tuple[UUID, ...] | None  # None: every user in scope
    model: str | None
    request_type: str | None
    since: datetime | None  # inclusive
    until: datetime | None  # exclusive


class Where:
    """Conditions joined by AND, with their parameters in order."""

    def __init__(self) -> None:
        self.conds: list[sql.Composable] = []
        self.params: list[Any] = []

    def add(self, cond: LiteralString | sql.Composable, *params: Any) -> Where:
        self.conds.append(sql.SQL(cond) if isinstance(cond, str) else cond)
        self.params.extend(params)
        return self

    def col(self, column: sql.Composable, op: LiteralString, value: Any) -> Where:
        return self.add(sql.SQL("{} " + op + " %s").format(column), value)

    def span(self, span: Span, *, alias: str, time_column: str | None) -> Where:
        """The span's tenant, user, model, type and time conditions on `alias`."""

        def c(name: str) -> sql.Composable:
            return sql.Identifier(alias, name)

        if span.tenant_id is not None:
            self.col(c("tenant_id"), "=", span.tenant_id)
        if span.user_ids is not None:
            self.add(sql.SQL("{} = ANY(%s)").format(c("user_id")), list(span.user_ids))
        if span.model is not None:
            self.col(c("model"), "=", span.model)
        if span.request_type is not None:
            self.col(c("request_type"), "=", span.request_type)
        if time_column is not None:
            if span.since is not None:
                self.col(c(time_column), ">=", span.since)
            if span.until is not None:
                self.col(c(time_column), "<", span.until)
        return self

    def clause(self, keyword: LiteralString = "WHERE") -> sql.Composable:
        if not self.conds:
            return sql.SQL("")
        return sql.SQL(" " + keyword + " ") + sql.SQL(" AND ").join(self.conds)


def _user_ids(ctx: Ctx, tenant_id: UUID | None, user: UUID | str) -> Plan[tuple[UUID, ...]]:
    """A user reference as ids: a UUID as is; a string as an external id of the tenant
    (or, in operator scope without a tenant, of any tenant), else as a uuid string."""
    if isinstance(user, UUID):
        return (user,)
    if not isinstance(user, str) or not user:
        raise ValidationError("expected a user id or external id", field="user")
    where = Where().add("external_id = %s", user)
    if tenant_id is not None:
        where.add("tenant_id = %s", tenant_id)
    rows: list[tuple[UUID]] = yield Query(
        sql.SQL("SELECT id FROM llmbase.users{} ORDER BY id").format(where.clause()),
        where.params,
        tuples=True,
    )
    if rows:
        return tuple(r[0] for r in rows)
    try:
        return (UUID(user),)
    except ValueError:
        raise NotFound("user", user) from None


def resolve(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    tenant: UUID | str | None = None,
    user: UUID | str | None = None,
    model: str | None = None,
    request_type: str | None = None,
) -> Plan[Span]:
    """Check and resolve a report's filters in the client's scope.

    A tenant scope reports on its own tenant only (`tenant=` may name it, nothing else);
    a user scope on its own calls. The operator scope (`client.admin()`) spans every
    tenant unless `tenant=` picks one."""
    scope = ctx.scope
    lo = parse_when(since, field="since")
    hi = parse_when(until, field="until")
    if lo is not None and hi is not None and lo >= hi:
        raise ValidationError("must be after since", field="until")
    if scope.admin:
        tid = (yield from tenants.resolve(ctx, tenant)) if tenant is not None else None
    else:
        tid = scope.require_tenant()
        if tenant is not None and (yield from tenants.resolve(ctx, tenant)) != tid:
            raise PermissionDenied("a tenant-scoped client reports on its own tenant only")
    users: tuple[UUID, ...] | None = None
    if user is not None:
        users = yield from _user_ids(ctx, tid, user)
    elif scope.user_id is not None and not scope.admin:
        users = (scope.user_id,)
    for name, value in (("model", model), ("request_type", request_type)):
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            raise ValidationError("must be a string of at most 200 characters", field=name)
    return Span(tid, users, model, request_type, lo, hi)


def pieces(span: Span, grain: Grain | None) -> list[tuple[Grain, datetime | None, datetime | None]]:
    """(grain, from, to) ranges of rollup rows covering the span, widened to whole hours."""
    lo = floor_hour(span.since) if span.since is not None else None
    hi = ceil_hour(span.until) if span.until is not None else None
    if grain is not None:
        return [(grain, lo, hi)]
    if lo is None and hi is None:
        return [("day", None, None)]
    dlo = ceil_day(lo) if lo is not None else None
    dhi = floor_day(hi) if hi is not None else None
    if dlo is not None and dhi is not None and dlo >= dhi:
        return [("hour", lo, hi)]  # no whole day inside: hours only
    out: list[tuple[Grain, datetime | None, datetime | None]] = [("day", dlo, dhi)]
    if lo is not None and dlo is not None and lo < dlo:
        out.append(("hour", lo, dlo))
    if hi is not None and dhi is not None and dhi < hi:
        out.append(("hour", dhi, hi))
    return out


def rollup_source(
    span: Span,
    columns: Sequence[str],
    *,
    grain: Grain | None = None,
    period: Period | None = None,
) -> tuple[sql.Composable, list[Any]]:
    """A subquery (alias r) over the rollups with `columns`, covering the span.

    The table: llmbase.request_rollups_tenant (summed over users, far fewer rows) when the
    span has no user filter (tenant-wide or operator scope, no `user=`) and no column
    needs the user; else llmbase.request_rollups. Every piece reads the same table, so a
    sum never mixes the two levels.

    Without `grain`, whole UTC days come from the day rows and the partial days at the
    edges from the hour rows; each piece is one range scan of the primary key. With
    `period`, a column `start` holds the UTC start of each row's hour, day or month:
    bucket_start itself where the grain is the period, so the key order of the index
    serves a GROUP BY start without a sort."""
    cols: sql.Composable = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    parts: list[sql.Composable] = []
    params: list[Any] = []
    undated = Span(span.tenant_id, span.user_ids, span.model, span.request_type, None, None)
    per_tenant = span.user_ids is None and "user_id" not in columns
    table = "request_rollups_tenant" if per_tenant else "request_rollups"
    for g, lo, hi in pieces(span, grain):
        w = Where().add("grain = %s", g)
        if lo is not None:
            w.add("bucket_start >= %s", lo)
        if hi is not None:
            w.add("bucket_start < %s", hi)
        w.span(undated, alias=table, time_column=None)
        select = cols
        if period == g:
            select = sql.SQL("bucket_start AS start, {}").format(cols)
        elif period is not None:
            select = sql.SQL("date_trunc({}, bucket_start, 'UTC') AS start, {}").format(
                sql.Literal(period), cols
            )
        parts.append(
            sql.SQL("SELECT {} FROM {}{}").format(select, sql.Identifier("llmbase", table), w.clause())
        )
        params.extend(w.params)
    return sql.SQL("(") + sql.SQL(" UNION ALL ").join(parts) + sql.SQL(") AS r"), params
