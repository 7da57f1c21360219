"""The retrieval log's rows (llmbase.retrievals and retrieval_results) from "retrieval"
records: one search each, with the chunks it returned. Written in the writer's batch
transaction (operator scope); a replay inserts nothing twice (ON CONFLICT DO NOTHING)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg

__all__ = ["RETRIEVAL_FIELDS", "retrieval_row", "write_retrievals"]

#: Keys a "retrieval" record may carry (others go into metadata).
RETRIEVAL_FIELDS = (
    "id",
    "created_at",
    "user_id",
    "collection_id",
    "mode",
    "method",
    "query",
    "filter",
    "k",
    "ef_search",
    "threshold",
    "conversation_id",
    "message_id",
    "request_id",
    "run_id",
    "latency_ms",
)

_INSERT = """
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS s(
        tenant_id uuid, id uuid, created_at timestamptz, user_id uuid, collection_id uuid, mode text,
        method text, query text, filter jsonb, k int, ef_search int, threshold float8,
        conversation_id uuid, message_id uuid, request_id uuid, run_id uuid, latency_ms float8,
        result_count int, metadata jsonb, results jsonb)
), ins AS (
    INSERT INTO llmbase.retrievals (tenant_id, id, created_at, user_id, collection_id, mode, method, query,
        filter, k, ef_search, threshold, conversation_id, message_id, request_id, run_id, result_count,
        latency_ms, metadata)
    SELECT tenant_id, id, coalesce(created_at, now()), user_id, collection_id, mode, method, query, filter, k,
        ef_search, threshold, conversation_id, message_id, request_id, run_id, result_count, latency_ms,
        coalesce(metadata, '{}')
      FROM r
    ON CONFLICT (tenant_id, id) DO NOTHING
    RETURNING tenant_id, id
)
INSERT INTO llmbase.retrieval_results (tenant_id, retrieval_id, rank, chunk_id, document_id, score, distance)
SELECT r.tenant_id, r.id, x.rank, x.chunk_id, x.document_id, x.score, x.distance
  FROM ins JOIN r ON r.tenant_id = ins.tenant_id AND r.id = ins.id,
       jsonb_to_recordset(r.results) AS x(rank int, chunk_id uuid, document_id uuid, score float8, distance float8)
ON CONFLICT DO NOTHING
"""


def _plain(v: Any) -> Any:
    """JSON-safe values: ids and times as strings, non-finite floats as null."""
    if isinstance(v, UUID):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def retrieval_row(tenant: UUID, payload: Mapping[str, Any]) -> dict[str, Any]:
    """One retrievals row (with its results) as JSON-ready values."""
    row: dict[str, Any] = {"tenant_id": str(tenant)}
    extra: dict[str, Any] = {}
    for k, v in payload.items():
        if k in RETRIEVAL_FIELDS:
            row[k] = _plain(v)
        elif k != "results":
            extra[k] = _plain(v)
    results = []
    for r in payload.get("results") or ():
        results.append(
            {k: _plain(r.get(k)) for k in ("rank", "chunk_id", "document_id", "score", "distance")}
        )
    row["results"] = results
    row["result_count"] = len(results)
    if extra:
        row["metadata"] = extra
    return row


def write_retrievals(conn: psycopg.Connection[Any], rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert the retrievals (and their results) not stored yet; returns results inserted."""
    if not rows:
        return 0
    doc = json.dumps(list(rows), default=str).replace("\\u0000", "\\ufffd")
    cur = conn.execute(_INSERT, (doc,))
    return cur.rowcount
