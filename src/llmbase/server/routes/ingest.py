"""Batch ingest (scope `ingest`): `POST /v1/ingest/requests` (request-log records) and
`POST /v1/ingest/runs` (runs, iterations, tool calls). Each record is validated on its own:
the valid ones are queued for the background writer (the same path as
`client.requests.log()`: redaction, pricing, rollups, idempotency by id), the others come
back in `errors` with their index and field. `?wait=true` returns after the writer stored
them (`flushed`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pydantic
from fastapi import APIRouter, Query

from ..._ids import uuid7
from ...ingest.api import enqueue
from ..auth import Principal, require
from ..schemas import (
    BatchResult,
    IterationRecord,
    RecordError,
    RequestBatch,
    RequestRecord,
    RunBatch,
    RunRecord,
    ToolCallRecord,
)
from ._common import ERRORS

router = APIRouter(prefix="/v1/ingest", tags=["ingest"], responses=ERRORS)

_RUN_KINDS: dict[str, type[pydantic.BaseModel]] = {
    "run": RunRecord,
    "iteration": IterationRecord,
    "tool_call": ToolCallRecord,
}
_FLUSH_TIMEOUT = 30.0


def _error(index: int, exc: pydantic.ValidationError) -> RecordError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    return RecordError(index=index, field=loc or None, message=str(first.get("msg", "invalid")))


def _checked(index: int, raw: Any, model: type[pydantic.BaseModel]) -> dict[str, Any] | RecordError:
    if not isinstance(raw, dict):
        return RecordError(index=index, field=None, message="a record must be a JSON object")
    if "tenant_id" in raw:
        return RecordError(index=index, field="tenant_id", message="the tenant comes from the API key")
    try:
        rec = model.model_validate(raw)
    except pydantic.ValidationError as exc:
        return _error(index, exc)
    return rec.model_dump(exclude_none=True)


def _result(principal: Principal, ids: list[UUID], errors: list[RecordError], wait: bool) -> BatchResult:
    flushed = principal.client.requests.flush(_FLUSH_TIMEOUT) if wait and ids else None
    return BatchResult(accepted=len(ids), ids=ids, errors=errors, flushed=flushed)


@router.post("/requests", response_model=BatchResult)
def ingest_requests(
    body: RequestBatch,
    wait: bool = Query(False, description="Return once the writer stored the records."),
    principal: Principal = require("ingest"),
) -> BatchResult:
    """Log request records (llmbase.requests' columns; docs/ingest.md)."""
    ids: list[UUID] = []
    errors: list[RecordError] = []
    log = principal.client.requests.log
    for i, raw in enumerate(body.records):
        fields = _checked(i, raw, RequestRecord)
        if isinstance(fields, RecordError):
            errors.append(fields)
            continue
        ids.append(log(**fields))
    return _result(principal, ids, errors, wait)


@router.post("/runs", response_model=BatchResult)
def ingest_runs(
    body: RunBatch,
    wait: bool = Query(False, description="Return once the writer stored the records."),
    principal: Principal = require("ingest"),
) -> BatchResult:
    """Log agent runs (`kind: run`, upserted by id: a later record of the same run fills in
    its end), iterations (`kind: iteration`, by run_id + iteration) and tool calls
    (`kind: tool_call`). Ids: the run's, the iteration's run_id, the tool call's."""
    ids: list[UUID] = []
    errors: list[RecordError] = []
    for i, raw in enumerate(body.records):
        kind = raw.get("kind") if isinstance(raw, dict) else None
        model = _RUN_KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            errors.append(
                RecordError(index=i, field="kind", message="kind must be run, iteration or tool_call")
            )
            continue
        fields = _checked(i, raw, model)
        if isinstance(fields, RecordError):
            errors.append(fields)
            continue
        del fields["kind"]
        if kind == "tool_call" and "id" not in fields:
            fields["id"] = uuid7()
        ident = fields["run_id"] if kind == "iteration" else fields["id"]
        enqueue(principal.client, str(kind), fields)
        ids.append(ident)
    return _result(principal, ids, errors, wait)
