"""Agent runs (seed 004's performance_metrics) under `/v1/runs`: newest first with a cursor,
and one run with its iterations (API time vs tool time) and tool calls. Runs are written
through `/v1/ingest/runs` or the SDK's `client.run(...)`; statistics per iteration number
are `/v1/reports/iterations`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query

from ..auth import Principal, require
from ..dashboard import queries
from ._common import ERRORS

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=ERRORS)


@router.get("")
def list_runs(
    cursor: str | None = Query(None, min_length=1, max_length=500),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("read"),
) -> dict[str, Any]:
    """`{"items": [...], "next_cursor": ...}`: id, name, status, user, conversation, start and
    end, total / API / tool milliseconds, iteration count, error. A user's key sees its own."""
    result: dict[str, Any] = principal.client._core.run(queries.runs, cursor=cursor, limit=limit)
    return result


@router.get("/{run_id}")
def get_run(run_id: UUID, principal: Principal = require("read")) -> dict[str, Any]:
    """One run with `iterations` (iteration, start, end, total/API/tool ms, call counts) and
    `tool_calls` (name, iteration, start, duration, status, error). 404 for another tenant's."""
    result: dict[str, Any] = principal.client._core.run(queries.run, run_id)
    return result
