"""Helpers shared by the ingest tests (no tests here): rollups recomputed from raw rows,
varied request payloads, a superuser connection."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

import psycopg

from llmbase import histogram

ZERO = UUID(int=0)

_RAW_GROUPS = """
SELECT tenant_id, g.grain,
       date_trunc(g.grain, created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
       coalesce(user_id, %(zero)s), coalesce(model, ''), coalesce(provider, ''), request_type,
       count(*), count(*) FILTER (WHERE status <> 'success'),
       coalesce(sum(tokens_prompt), 0), coalesce(sum(tokens_completion), 0), coalesce(sum(tokens_total), 0),
       coalesce(sum(tokens_cached), 0), coalesce(sum(tokens_reasoning), 0),
       coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_unknown), count(*) FILTER (WHERE cache_hit),
       coalesce(sum(cost_saved_usd), 0),
       count(latency_ms), coalesce(sum(latency_ms), 0), coalesce(max(latency_ms), 0),
       coalesce(array_agg(latency_ms) FILTER (WHERE latency_ms IS NOT NULL), '{}'),
       count(ttft_ms), coalesce(sum(ttft_ms), 0)
  FROM llmbase.requests CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain)
 GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
_ROLLUPS = """
SELECT tenant_id, grain, bucket_start, user_id, model, provider, request_type,
       requests, errors, tokens_prompt, tokens_completion, tokens_total, tokens_cached, tokens_reasoning,
       cost_usd, cost_unknown, cache_hits, cost_saved_usd,
       latency_count, latency_sum_ms, latency_max_ms, latency_hist, ttft_count, ttft_sum_ms
  FROM llmbase.request_rollups
"""


# The tenant level: the same figures without the user.
_RAW_TENANT_GROUPS = """
SELECT tenant_id, g.grain,
       date_trunc(g.grain, created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket_start,
       coalesce(model, ''), coalesce(provider, ''), request_type,
       count(*), count(*) FILTER (WHERE status <> 'success'),
       coalesce(sum(tokens_prompt), 0), coalesce(sum(tokens_completion), 0), coalesce(sum(tokens_total), 0),
       coalesce(sum(tokens_cached), 0), coalesce(sum(tokens_reasoning), 0),
       coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_unknown), count(*) FILTER (WHERE cache_hit),
       coalesce(sum(cost_saved_usd), 0),
       count(latency_ms), coalesce(sum(latency_ms), 0), coalesce(max(latency_ms), 0),
       coalesce(array_agg(latency_ms) FILTER (WHERE latency_ms IS NOT NULL), '{}'),
       count(ttft_ms), coalesce(sum(ttft_ms), 0)
  FROM llmbase.requests CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain)
 GROUP BY 1, 2, 3, 4, 5, 6
"""
_TENANT_ROLLUPS = """
SELECT tenant_id, grain, bucket_start, model, provider, request_type,
       requests, errors, tokens_prompt, tokens_completion, tokens_total, tokens_cached, tokens_reasoning,
       cost_usd, cost_unknown, cache_hits, cost_saved_usd,
       latency_count, latency_sum_ms, latency_max_ms, latency_hist, ttft_count, ttft_sum_ms
  FROM llmbase.request_rollups_tenant
"""


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


def rollup_mismatches(conn: psycopg.Connection[Any]) -> list[str]:
    """Every difference between request_rollups (and request_rollups_tenant, its level
    without the user) and the same figures grouped from raw rows."""
    return [
        *_mismatches(conn, _RAW_GROUPS, _ROLLUPS, 7, "rollup"),
        *_mismatches(conn, _RAW_TENANT_GROUPS, _TENANT_ROLLUPS, 6, "tenant rollup"),
    ]


def _mismatches(
    conn: psycopg.Connection[Any], raw_sql: LiteralString, got_sql: LiteralString, nkey: int, what: str
) -> list[str]:
    raw: dict[tuple[Any, ...], list[Any]] = {}
    for r in conn.execute(raw_sql, {"zero": ZERO}).fetchall():
        vals = list(r[nkey:])
        lat = vals.pop(14)
        vals.insert(14, histogram.from_values(lat))
        raw[tuple(r[:nkey])] = vals
    got = {tuple(r[:nkey]): list(r[nkey:]) for r in conn.execute(got_sql).fetchall()}
    out = [f"missing {what} {k}" for k in raw.keys() - got.keys()]
    out += [f"{what} without rows {k}" for k in got.keys() - raw.keys()]
    names = [
        "requests",
        "errors",
        "tokens_prompt",
        "tokens_completion",
        "tokens_total",
        "tokens_cached",
        "tokens_reasoning",
        "cost_usd",
        "cost_unknown",
        "cache_hits",
        "cost_saved_usd",
        "latency_count",
        "latency_sum",
        "latency_max",
        "latency_hist",
        "ttft_count",
        "ttft_sum",
    ]
    for k in raw.keys() & got.keys():
        for name, a, b in zip(names, raw[k], got[k], strict=True):
            if not _close(a, b):
                out.append(f"{k}: {name} raw={a} {what}={b}")
    return out


def profile_mismatches(conn: psycopg.Connection[Any]) -> list[str]:
    """user_profiles.request_count / total_tokens / total_cost_usd against raw rows."""
    rows = conn.execute(
        "SELECT p.tenant_id, p.user_id, p.request_count, p.total_tokens, p.total_cost_usd,"
        "       r.n, r.tokens, r.cost"
        "  FROM llmbase.user_profiles p"
        "  JOIN (SELECT tenant_id, user_id, count(*) n, coalesce(sum(tokens_total), 0) tokens,"
        "               coalesce(sum(cost_usd), 0) cost"
        "          FROM llmbase.requests WHERE user_id IS NOT NULL GROUP BY 1, 2) r USING (tenant_id, user_id)"
    ).fetchall()
    return [f"{r[:2]}: {r[2:5]} != {r[5:]}" for r in rows if (r[2], r[3], r[4]) != (r[5], r[6], r[7])]


MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", None]
TYPES = ["chat", "embedding", "transcription", "completion"]


def payload(rng: random.Random, *, users: list[UUID] | None = None, hours_back: int = 30) -> dict[str, Any]:
    """A varied request: some fields missing, some errors, costs, latencies over hours."""
    p: dict[str, Any] = {
        "request_type": rng.choice(TYPES),
        "model": rng.choice(MODELS),
        "provider": rng.choice(["openai", "anthropic", None]),
        "status": rng.choice(["success"] * 8 + ["error", "rate_limited"]),
        "created_at": datetime.now(UTC) - timedelta(minutes=rng.randrange(0, hours_back * 60)),
        "request_body": {"messages": [{"role": "user", "content": "hi " * rng.randrange(1, 50)}]},
        "metadata": {"n": rng.randrange(1000)},
    }
    if rng.random() < 0.9:
        p["latency_ms"] = rng.choice([rng.uniform(0.05, 50), rng.lognormvariate(6, 1.5)])
    if rng.random() < 0.5:
        p["ttft_ms"] = rng.uniform(1, 400)
    if rng.random() < 0.8:
        p["tokens_prompt"] = rng.randrange(0, 4000)
        p["tokens_completion"] = rng.randrange(0, 1000)
    if rng.random() < 0.3:
        p["tokens_cached"] = rng.randrange(0, 100)
        p["tokens_reasoning"] = rng.randrange(0, 100)
    if rng.random() < 0.7:
        p["cost_usd"] = Decimal(rng.randrange(0, 10**7)) / Decimal(10**9)
    else:
        p["cost_unknown"] = rng.random() < 0.5
    if rng.random() < 0.1:
        p["cache_hit"] = True
        p["cost_saved_usd"] = Decimal("0.001")
    if users:
        p["user_id"] = rng.choice([*users, None])
    return p


@contextmanager
def superuser(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def ids_in_db(conn: psycopg.Connection[Any]) -> list[UUID]:
    return [r[0] for r in conn.execute("SELECT id FROM llmbase.requests").fetchall()]
