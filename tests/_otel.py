"""Shared helpers of the OTLP tests: OTLP/JSON exports built by hand, rows read back."""

from __future__ import annotations

import os
import time
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

import llmbase

NS = 1_000_000  # one millisecond in nanoseconds


def now_ns() -> int:
    return time.time_ns() - 60_000 * NS  # a minute ago: inside today's partition window


def ids() -> tuple[str, str]:
    return os.urandom(16).hex(), os.urandom(8).hex()


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [attr("x", x)["value"] for x in value]}}
    else:
        v = {"stringValue": str(value)}
    return {"key": key, "value": v}


def span(
    trace: str,
    span_id: str,
    name: str,
    start: int,
    ms: float,
    attrs: dict[str, Any],
    parent: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(ms * NS)),
        "attributes": [attr(k, v) for k, v in attrs.items()],
    }
    if parent:
        s["parentSpanId"] = parent
    if error is not None:
        s["status"] = {"code": 2, "message": error}
    return s


def export(spans: list[dict[str, Any]], service: str = "support-bot") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", service)]},
                "scopeSpans": [{"scope": {"name": "test", "version": "1"}, "spans": spans}],
            }
        ]
    }


def chat_attrs(model: str = "gpt-4o-mini", prompt: int = 12, completion: int = 5) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": prompt,
        "gen_ai.usage.output_tokens": completion,
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ["stop"],
    }


def rows(db_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows read as the superuser (no RLS): what is really stored."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def counts(db_url: str) -> dict[str, int]:
    out = {}
    for table in ("requests", "runs", "run_iterations", "run_tool_calls", "ingest_dead_letters"):
        out[table] = rows(db_url, f"SELECT count(*) AS n FROM llmbase.{table}")[0]["n"]
    out["rollup_requests"] = rows(
        db_url,
        "SELECT coalesce(sum(requests), 0)::int AS n FROM llmbase.request_rollups_tenant WHERE grain = 'day'",
    )[0]["n"]
    return out


def ingest_key(
    client: llmbase.LLMBase, tenant: str | None = None, scopes: tuple[str, ...] = ("ingest",)
) -> str:
    c = client.tenant(tenant) if tenant else client
    return str(c.keys.create(f"otel {tenant or 'default'}", scopes=list(scopes)).secret)


def tenant_id(client: llmbase.LLMBase, slug: str) -> UUID:
    return UUID(
        str(rows(client.database.url, "SELECT id FROM llmbase.tenants WHERE slug = %s", slug)[0]["id"])
    )
