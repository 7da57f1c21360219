"""The dashboard's JSON endpoints under `/ui/api/` (scope `read`; left out of the OpenAPI
spec: they serve the pages, the public interface is `/v1`). Each answers one page in one
call with small JSON: aggregates come from the rollups."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query

from ...errors import NotFound
from ..auth import Principal, require
from . import queries

__all__ = ["router"]

router = APIRouter(prefix="/ui/api", include_in_schema=False)

#: overview ranges: (how far back, series period)
RANGES: dict[str, tuple[timedelta, queries.Period]] = {
    "24h": (timedelta(hours=24), "hour"),
    "7d": (timedelta(days=7), "hour"),
    "30d": (timedelta(days=30), "day"),
    "90d": (timedelta(days=90), "day"),
}
_RANGE = "^(24h|7d|30d|90d)$"


def _since(range_: str) -> tuple[datetime, queries.Period]:
    back, period = RANGES[range_]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return now - back, period


def _plain(value: Any) -> Any:
    """Dataclasses (SDK rows) as dicts, for the JSON encoder."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@router.get("/session")
def session(principal: Principal = require("read")) -> dict[str, Any]:
    """Who the dashboard acts for: tenant, user, scopes, local admin mode."""
    scope = principal.client.scope()
    tenant = None
    if scope.tenant_id is not None:
        try:
            tenant = _plain(principal.client.admin().tenants.get(scope.tenant_id))
        except NotFound:
            tenant = None
    return {
        "tenant_id": scope.tenant_id,
        "tenant": {"slug": tenant.get("slug"), "name": tenant.get("name")} if tenant else None,
        "user_id": scope.user_id,
        "scopes": sorted(principal.scopes),
        "local_admin": principal.local_admin,
    }


@router.get("/overview")
def overview(
    range_: str = Query("7d", alias="range", pattern=_RANGE),
    principal: Principal = require("read"),
) -> dict[str, Any]:
    """Totals, series and breakdowns of the range (rollups only)."""
    since, period = _since(range_)
    out: dict[str, Any] = principal.client._core.run(queries.overview, since=since, period=period)
    out["range"] = range_
    return out


@router.get("/overview/users")
def overview_users(
    range_: str = Query("7d", alias="range", pattern=_RANGE),
    principal: Principal = require("read"),
) -> dict[str, Any]:
    """The range's top 10 users by cost (per-user rollups)."""
    since, _ = _since(range_)
    return {"by_user": principal.client._core.run(queries.top_users, since=since)}


@router.get("/requests/facets")
def request_facets(principal: Principal = require("read")) -> dict[str, Any]:
    result: dict[str, Any] = principal.client._core.run(queries.facets)
    return result


@router.get("/requests")
def requests(
    range_: str = Query("7d", alias="range", pattern=_RANGE),
    model: str | None = Query(None, max_length=200),
    status: str | None = Query(None, max_length=50),
    request_type: str | None = Query(None, max_length=50),
    user: str | None = Query(None, max_length=200),
    cursor: str | None = Query(None, max_length=500),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("read"),
) -> dict[str, Any]:
    """The request log newest first, filtered; `{"items", "next_cursor"}`."""
    since, _ = _since(range_)
    result: dict[str, Any] = principal.client._core.run(
        queries.requests,
        since=since,
        model=model or None,
        status=status or None,
        request_type=request_type or None,
        user=user or None,
        cursor=cursor or None,
        limit=limit,
    )
    return result


@router.get("/requests/{request_id}")
def request(
    request_id: str, at: datetime | None = None, principal: Principal = require("read")
) -> dict[str, Any]:
    """One call with its raw request and response bodies."""
    result: dict[str, Any] = principal.client._core.run(queries.request, request_id, at)
    return result


@router.get("/conversations")
def conversations(
    cursor: str | None = Query(None, max_length=500),
    limit: int = Query(50, ge=1, le=200),
    archived: bool | None = None,
    principal: Principal = require("read"),
) -> dict[str, Any]:
    page = principal.client.conversations.list(limit=limit, cursor=cursor or None, archived=archived)
    return {"items": _plain(list(page.items)), "next_cursor": page.next_cursor}


@router.get("/conversations/{conversation_id}")
def conversation(conversation_id: str, principal: Principal = require("read")) -> dict[str, Any]:
    """A conversation, its messages (the latest 500) and their feedback."""
    c = principal.client
    conv = c.conversations.get(conversation_id)
    messages = c.conversations.history(conv.id, limit=500)
    fb = c._core.run(queries.conversation_feedback, conv.id)
    return {
        "conversation": _plain(conv),
        "history": _plain(messages),
        "summary": _plain(c.feedback.conversation_summary(conv.id)),
        "feedback_by_message": fb["messages"],
        "feedback": fb["feedback"],
    }


@router.get("/runs")
def runs(
    cursor: str | None = Query(None, max_length=500),
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = require("read"),
) -> dict[str, Any]:
    result: dict[str, Any] = principal.client._core.run(queries.runs, cursor=cursor or None, limit=limit)
    return result


@router.get("/runs/stats")
def run_stats(principal: Principal = require("read")) -> dict[str, Any]:
    """Per-iteration-number statistics over the last 30 days (reports.iterations)."""
    rows = principal.client.reports.iterations(since="30d", min_samples=1)
    return {"iterations": _plain(rows)}


@router.get("/runs/{run_id}")
def run(run_id: str, principal: Principal = require("read")) -> dict[str, Any]:
    """A run with its iterations (API vs tool time) and tool calls."""
    result: dict[str, Any] = principal.client._core.run(queries.run, run_id)
    return result


@router.get("/cache")
def cache(principal: Principal = require("read")) -> dict[str, Any]:
    """Cache entries, hit rate and the cost hits saved."""
    return {"stats": _plain(principal.client.cache.stats())}


@router.get("/budgets")
def budgets(principal: Principal = require("read")) -> dict[str, Any]:
    """Budgets and this month's spend against each (per subject)."""
    c = principal.client
    defs = {b.id: b for b in c.budgets.list()}
    usage = c.budgets.usage()
    users: dict[Any, str | None] = {}
    items = []
    for u in usage:
        b = defs.get(u.budget_id)
        subject = None if u.subject_key.int == 0 else u.subject_key
        if subject is not None and subject not in users:
            try:
                users[subject] = c.users.get(subject).external_id
            except NotFound:
                users[subject] = None
        items.append(
            {
                **_plain(u),
                "remaining_usd": u.remaining_usd,
                "per_user": b.per_user if b else False,
                "user_id": subject,
                "user_external_id": users.get(subject) if subject else None,
            }
        )
    return {"budgets": _plain(list(defs.values())), "usage": items}


@router.get("/collections")
def collections(principal: Principal = require("read")) -> dict[str, Any]:
    """Document collections with their document and chunk counts."""
    c = principal.client
    stats = {s.name: _plain(s) for s in c.collections.stats()}
    items = [{**_plain(col), "stats": stats.get(col.name)} for col in c.collections.list()]
    return {"items": items}


@router.get("/collections/{name}/search")
def search(
    name: str,
    q: str = Query(..., min_length=1, max_length=2000),
    k: int = Query(10, ge=1, le=50),
    principal: Principal = require("read"),
) -> dict[str, Any]:
    """Full-text search of one collection (no embedder on the server; not logged)."""
    handle = principal.client.collection(name, log=False)
    hits = handle.search(q, mode="text", k=k)
    return {"hits": _plain(hits)}
