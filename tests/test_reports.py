"""Reports: every answer checked against the same figure computed from the raw rows.

Raw rows are written the operator's way (COPY into llmbase.requests after
ensure_request_partitions), then rebuild_rollups builds the rollups the reports read."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

import llmbase
from llmbase import histogram
from llmbase.cli import app
from llmbase.db import DEFAULT_TENANT
from llmbase.errors import NotFound, PermissionDenied, TenantMissing, ValidationError
from llmbase.reports import Latency, parse_when
from llmbase.reports.quality import dense_histogram
from llmbase.rollups import rebuild_rollups
from test_ingest_support import rollup_mismatches

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
COLS = (
    "tenant_id",
    "created_at",
    "id",
    "request_type",
    "provider",
    "model",
    "user_id",
    "status",
    "tokens_prompt",
    "tokens_completion",
    "tokens_total",
    "cost_usd",
    "cost_unknown",
    "latency_ms",
    "ttft_ms",
    "cache_hit",
    "request_body",
    "response_body",
    "metadata",
)
MODELS = {"chat": ["gpt-4o", "gpt-4o-mini", "claude-sonnet"], "embedding": ["text-embedding-3-small"]}


def make_rows(
    rng: random.Random,
    tenant_id: uuid.UUID,
    users: list[uuid.UUID | None],
    n: int,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """Synthetic calls: lognormal latencies, ~10% errors, a few without latency or price."""
    span = (end - start).total_seconds()
    rows = []
    for _ in range(n):
        rtype = rng.choice(["chat", "chat", "chat", "embedding", "transcription"])
        model = (
            None
            if rtype == "transcription" and rng.random() < 0.5
            else rng.choice(MODELS.get(rtype, ["whisper-1"]))
        )
        status = "success" if rng.random() > 0.1 else rng.choice(["error", "timeout", "rate_limited"])
        prompt, completion = rng.randint(1, 2000), rng.randint(0, 800)
        unknown = rng.random() < 0.05
        cost = None if unknown else Decimal(rng.randint(0, 10**7)) / Decimal(10**10)
        latency = None if rng.random() < 0.03 else round(rng.lognormvariate(6.0, 0.8), 3) + 1.0
        rows.append(
            {
                "tenant_id": tenant_id,
                "created_at": start + timedelta(seconds=rng.random() * span),
                "id": uuid.uuid4(),
                "request_type": rtype,
                "provider": "openai"
                if model and model.startswith(("gpt", "text", "whisper"))
                else "anthropic",
                "model": model,
                "user_id": rng.choice(users),
                "status": status,
                "tokens_prompt": prompt,
                "tokens_completion": completion,
                "tokens_total": prompt + completion,
                "cost_usd": cost,
                "cost_unknown": unknown,
                "latency_ms": latency,
                "ttft_ms": None if latency is None else latency / 3,
                "cache_hit": rng.random() < 0.02,
                "request_body": Jsonb({"messages": [{"role": "user", "content": "hi"}]}),
                "response_body": Jsonb({"text": "hello"}),
                "metadata": Jsonb({}),
            }
        )
    return rows


def copy_requests(url: str, rows: list[dict[str, Any]]) -> None:
    """Write raw rows as an operator: partitions first, then COPY."""
    days = [r["created_at"].astimezone(UTC).date() for r in rows]
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
        conn.execute("SELECT llmbase.ensure_request_partitions(%s, %s)", (min(days), max(days)))
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in COLS)
        with conn.cursor().copy(sql.SQL("COPY llmbase.requests ({}) FROM STDIN").format(cols)) as cp:
            for r in rows:
                cp.write_row([r[c] for c in COLS])


@dataclass
class Loaded:
    rows: list[dict[str, Any]]
    acme: uuid.UUID
    users: dict[str, uuid.UUID]  # external id -> id (both tenants)
    start: datetime
    end: datetime


@pytest.fixture
def loaded(client: llmbase.LLMBase, db_url: str) -> Loaded:
    rng = random.Random(7)
    acme = client.tenants.create("acme").id
    users: dict[str, uuid.UUID] = {}
    for ext in ("alice", "bob", "carol"):
        users[ext] = client.users.create(ext).id
    for ext in ("dave", "erin"):
        users[ext] = client.tenant("acme").users.create(ext).id
    start, end = TODAY - timedelta(days=3), NOW
    rows = make_rows(
        rng, DEFAULT_TENANT, [users["alice"], users["bob"], users["carol"], None], 1500, start, end
    )
    rows += make_rows(rng, acme, [users["dave"], users["erin"]], 600, start, end)
    copy_requests(db_url, rows)
    result = rebuild_rollups(db_url, start, end + timedelta(hours=1))
    assert result.requests == len(rows)
    return Loaded(rows, acme, users, start, end)


# -- expected figures from raw rows ------------------------------------------------------
def pick(
    rows: Iterable[dict[str, Any]],
    *,
    tenant: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    **eq: Any,
) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if tenant is not None and r["tenant_id"] != tenant:
            continue
        if since is not None and r["created_at"] < since:
            continue
        if until is not None and r["created_at"] >= until:
            continue
        if any(r[k] != v for k, v in eq.items()):
            continue
        out.append(r)
    return out


def group(
    rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def cost(rows: Iterable[dict[str, Any]]) -> Decimal:
    return sum((r["cost_usd"] or Decimal(0) for r in rows), Decimal(0))


def errors(rows: Iterable[dict[str, Any]]) -> int:
    return sum(r["status"] != "success" for r in rows)


def exact_quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[math.floor(q * (len(s) - 1))]


def mean_latency(rows: list[dict[str, Any]]) -> float | None:
    lat = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    return statistics.fmean(lat) if lat else None


def close(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# -- rebuild_rollups ---------------------------------------------------------------------
def test_rebuild_histograms_match_python_and_are_idempotent(loaded: Loaded, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
        q = (
            "SELECT tenant_id, grain, bucket_start, user_id, model, provider, request_type, requests,"
            " latency_count, latency_hist FROM llmbase.request_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7"
        )
        before = conn.execute(q).fetchall()
    hour_rows = [r for r in before if r[1] == "hour"]
    zero = uuid.UUID(int=0)
    keyed = group(
        loaded.rows,
        lambda r: (
            r["tenant_id"],
            r["created_at"].astimezone(UTC).replace(minute=0, second=0, microsecond=0),
            r["user_id"] or zero,
            r["model"] or "",
            r["provider"] or "",
            r["request_type"],
        ),
    )
    assert len(hour_rows) == len(keyed)
    for t, _, start, u, m, p, rt, n, nlat, hist in hour_rows:
        raw = keyed[(t, start, u, m, p, rt)]
        assert n == len(raw)
        lat = [r["latency_ms"] for r in raw if r["latency_ms"] is not None]
        assert nlat == len(lat)
        assert hist == histogram.from_values(lat)  # calls without a latency stay out
    assert any(r[9] == [] for r in hour_rows)  # keys whose calls all lack a latency are kept
    day_total = sum(r[7] for r in before if r[1] == "day")
    assert day_total == len(loaded.rows)
    with psycopg.connect(db_url) as conn:
        # both levels (per user and request_rollups_tenant) equal a GROUP BY over raw rows
        assert rollup_mismatches(conn) == []
        tq = "SELECT * FROM llmbase.request_rollups_tenant ORDER BY 1, 2, 3, 4, 5, 6"
        tenant_before = conn.execute(tq).fetchall()
    assert sum(r[6] for r in tenant_before if r[1] == "day") == len(loaded.rows)
    rebuild_rollups(db_url, loaded.start, loaded.end)
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
        assert conn.execute(q).fetchall() == before
        tenant_after = conn.execute(tq).fetchall()
        assert rollup_mismatches(conn) == []
    # Float sums may be added in another order (parallel aggregation): equal within 1e-9.
    assert len(tenant_after) == len(tenant_before)
    for a, b in zip(tenant_after, tenant_before, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float):
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            else:
                assert x == y


def test_rebuild_equals_what_the_writer_maintains(client: llmbase.LLMBase, db_url: str) -> None:
    """Calls logged through the SDK (the writer updates rollups per batch) and rollups
    rebuilt from the same raw rows are identical."""
    rng = random.Random(5)
    alice = client.users.create("alice").id
    rows = make_rows(rng, DEFAULT_TENANT, [alice, None], 300, NOW - timedelta(hours=30), NOW)
    for r in rows:
        fields = {
            k: v for k, v in r.items() if k not in ("tenant_id", "request_body", "response_body", "metadata")
        }
        client.requests.log(**fields)
    assert client.requests.flush(timeout=60)
    queries = (
        "SELECT * FROM llmbase.request_rollups"
        " ORDER BY tenant_id, grain, bucket_start, user_id, model, provider, request_type",
        "SELECT * FROM llmbase.request_rollups_tenant"
        " ORDER BY tenant_id, grain, bucket_start, model, provider, request_type",
    )
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        written = [conn.execute(q).fetchall() for q in queries]
    for level in written:
        assert sum(r["requests"] for r in level) == 2 * len(rows)  # both grains
    rebuild_rollups(db_url, NOW - timedelta(hours=30), NOW)
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        rebuilt = [conn.execute(q).fetchall() for q in queries]
    with psycopg.connect(db_url) as conn:
        assert rollup_mismatches(conn) == []
    for new, old in zip(rebuilt, written, strict=True):
        assert len(new) == len(old)
        for a, b in zip(new, old, strict=True):
            for col in a:
                if col.endswith("_sum_ms"):  # float sums in another order
                    assert math.isclose(a[col], b[col], rel_tol=1e-9), col
                else:
                    assert a[col] == b[col], col


def test_rebuild_for_one_tenant_leaves_the_others(loaded: Loaded, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM llmbase.request_rollups WHERE tenant_id = %s", (DEFAULT_TENANT,))
        conn.execute("DELETE FROM llmbase.request_rollups_tenant WHERE tenant_id = %s", (DEFAULT_TENANT,))
        r = rebuild_rollups(conn, loaded.start, loaded.end, tenant=loaded.acme)
        conn.commit()
        assert r.tenant_id == loaded.acme
        assert r.requests == len(pick(loaded.rows, tenant=loaded.acme))
        tenants = conn.execute("SELECT DISTINCT tenant_id FROM llmbase.request_rollups").fetchall()
        per_tenant = conn.execute(
            "SELECT tenant_id, sum(requests) FROM llmbase.request_rollups_tenant"
            " WHERE grain = 'day' GROUP BY 1"
        ).fetchall()
    assert tenants == [(loaded.acme,)]
    assert per_tenant == [(loaded.acme, len(pick(loaded.rows, tenant=loaded.acme)))]


def test_reports_read_the_tenant_level_only_without_a_user(
    client: llmbase.LLMBase, loaded: Loaded, db_url: str
) -> None:
    """Tenant-wide and operator reports without a user filter read request_rollups_tenant;
    a user filter or a user scope reads request_rollups (a user scope sees none of the
    tenant level). Emptying one level shows which one a report reads."""
    alice = loaded.users["alice"]
    raw = pick(loaded.rows, tenant=DEFAULT_TENANT)
    assert sum(r.requests for r in client.reports.error_rate()) == len(raw)
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM llmbase.request_rollups_tenant")
    assert client.reports.error_rate() == []
    assert client.reports.latency() == []
    assert client.admin().reports.latency() == []
    mine = pick(raw, user_id=alice)
    assert sum(r.requests for r in client.reports.error_rate(user="alice")) == len(mine)
    assert sum(r.requests for r in client.user(alice).reports.latency()) == len(mine)
    assert sum(r.requests for r in client.reports.daily()) == len(raw)  # counts active users
    rebuild_rollups(db_url, loaded.start, loaded.end)
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM llmbase.request_rollups")
    assert sum(r.requests for r in client.reports.latency()) == len(raw)
    assert client.reports.error_rate(user="alice") == []
    assert client.user(alice).reports.error_rate() == []


# -- usage -------------------------------------------------------------------------------
def test_cost_by_user_matches_raw_rows(client: llmbase.LLMBase, loaded: Loaded) -> None:
    rows = client.reports.cost_by_user()
    raw = pick(loaded.rows, tenant=DEFAULT_TENANT)
    by_user = group(raw, lambda r: r["user_id"])
    assert len(rows) == len(by_user)
    names = {v: k for k, v in loaded.users.items()}
    for row in rows:
        expected = by_user[row.user_id]
        assert row.tenant_id == DEFAULT_TENANT
        assert row.external_id == (names[row.user_id] if row.user_id else None)
        assert row.requests == len(expected)
        assert row.errors == errors(expected)
        assert row.tokens_total == sum(r["tokens_total"] for r in expected)
        assert row.cost_usd == cost(expected)
        assert row.cost_unknown == sum(r["cost_unknown"] for r in expected)
    assert [r.cost_usd for r in rows] == sorted((r.cost_usd for r in rows), reverse=True)
    # one user's client sees only its own calls
    mine = client.user("alice").reports.cost_by_user()
    assert [(r.user_id, r.requests) for r in mine] == [
        (loaded.users["alice"], len(by_user[loaded.users["alice"]]))
    ]


def test_operator_reports_span_tenants(client: llmbase.LLMBase, loaded: Loaded) -> None:
    admin = client.admin().reports
    rows = admin.cost_by_user()
    assert {r.tenant_id for r in rows} == {DEFAULT_TENANT, loaded.acme}
    assert sum(r.requests for r in rows) == len(loaded.rows)
    acme = admin.cost_by_user(tenant="acme")
    assert sum(r.requests for r in acme) == len(pick(loaded.rows, tenant=loaded.acme))
    assert client.tenant("acme").reports.cost_by_user() == acme
    total = admin.daily()
    assert sum(d.requests for d in total) == len(loaded.rows)
    assert sum(d.cost_usd for d in total) == cost(loaded.rows)


def test_filters_model_type_user_external_id(client: llmbase.LLMBase, loaded: Loaded) -> None:
    raw = pick(loaded.rows, tenant=DEFAULT_TENANT, model="gpt-4o", user_id=loaded.users["bob"])
    rows = client.reports.cost_by_user(model="gpt-4o", user="bob")
    assert [(r.user_id, r.requests, r.cost_usd) for r in rows] == [(loaded.users["bob"], len(raw), cost(raw))]
    by_id = client.reports.cost_by_user(model="gpt-4o", user=loaded.users["bob"])
    assert by_id == rows
    emb = client.reports.error_rate(request_type="embedding")
    assert {r.request_type for r in emb} == {"embedding"}
    assert sum(r.requests for r in emb) == len(
        pick(loaded.rows, tenant=DEFAULT_TENANT, request_type="embedding")
    )


def test_daily_matches_raw_rows_including_partial_days(client: llmbase.LLMBase, loaded: Loaded) -> None:
    days = client.reports.daily()
    raw = pick(loaded.rows, tenant=DEFAULT_TENANT)
    by_day = group(raw, lambda r: r["created_at"].astimezone(UTC).date())
    assert [d.start.astimezone(UTC).date() for d in days] == sorted(by_day, reverse=True)
    for d in days:
        exp = by_day[d.start.astimezone(UTC).date()]
        assert (d.requests, d.errors, d.cost_usd) == (len(exp), errors(exp), cost(exp))
        assert d.tokens_prompt == sum(r["tokens_prompt"] for r in exp)
        assert d.tokens_completion == sum(r["tokens_completion"] for r in exp)
        assert d.active_users == len({r["user_id"] for r in exp} - {None})
        assert close(d.mean_latency_ms, mean_latency(exp))
    # a range with partial days at both ends: day rows inside, hour rows at the edges
    since, until = TODAY - timedelta(days=2, hours=-5), TODAY - timedelta(hours=7)
    part = client.reports.daily(since=since, until=until)
    exp_rows = pick(raw, since=since, until=until)
    assert sum(d.requests for d in part) == len(exp_rows)
    assert sum(d.cost_usd for d in part) == cost(exp_rows)
    per_day = group(exp_rows, lambda r: r["created_at"].astimezone(UTC).date())
    assert {d.start.astimezone(UTC).date(): d.requests for d in part} == {
        k: len(v) for k, v in per_day.items()
    }
    # within one day: hours only
    one = client.reports.daily(since=TODAY - timedelta(hours=20), until=TODAY - timedelta(hours=10))
    assert sum(d.requests for d in one) == len(
        pick(raw, since=TODAY - timedelta(hours=20), until=TODAY - timedelta(hours=10))
    )


def test_hourly_monthly_today(client: llmbase.LLMBase, loaded: Loaded) -> None:
    raw = pick(loaded.rows, tenant=DEFAULT_TENANT)
    since = TODAY - timedelta(days=1, hours=3)
    hours = client.reports.hourly(since=since)
    by_hour = group(
        pick(raw, since=since),
        lambda r: r["created_at"].astimezone(UTC).replace(minute=0, second=0, microsecond=0),
    )
    assert {h.start: (h.requests, h.errors, h.cost_usd) for h in hours} == {
        k: (len(v), errors(v), cost(v)) for k, v in by_hour.items()
    }
    assert [h.start for h in hours] == sorted((h.start for h in hours), reverse=True)
    for h in hours:
        assert close(h.mean_latency_ms, mean_latency(by_hour[h.start]))
    months = client.reports.monthly()
    by_month = group(raw, lambda r: r["created_at"].astimezone(UTC).strftime("%Y-%m"))
    assert {
        m.start.astimezone(UTC).strftime("%Y-%m"): (m.requests, m.cost_usd, m.active_users) for m in months
    } == {k: (len(v), cost(v), len({r["user_id"] for r in v} - {None})) for k, v in by_month.items()}
    today = client.reports.today()
    exp = pick(raw, since=TODAY)
    assert today.start == TODAY
    assert (today.requests, today.errors, today.tokens_total, today.cost_usd) == (
        len(exp),
        errors(exp),
        sum(r["tokens_total"] for r in exp),
        cost(exp),
    )
    assert client.tenant("acme").user("dave").reports.today(model="no-such-model").requests == 0


def test_user_usage_is_get_usage_stats(client: llmbase.LLMBase, loaded: Loaded) -> None:
    since = TODAY - timedelta(days=2)
    stats = client.reports.user_usage("carol", since=since)
    raw = pick(loaded.rows, tenant=DEFAULT_TENANT, since=since, user_id=loaded.users["carol"])
    assert (stats.user_id, stats.external_id) == (loaded.users["carol"], "carol")
    assert (stats.requests, stats.errors, stats.cost_usd) == (len(raw), errors(raw), cost(raw))
    assert stats.tokens_prompt == sum(r["tokens_prompt"] for r in raw)
    assert close(stats.mean_latency_ms, mean_latency(raw))
    by_type = group(raw, lambda r: r["request_type"])
    assert {b.key: (b.requests, b.cost_usd) for b in stats.by_type} == {
        k: (len(v), cost(v)) for k, v in by_type.items()
    }
    by_model = group(raw, lambda r: r["model"])
    assert {b.key: (b.requests, b.errors, b.tokens_total) for b in stats.by_model} == {
        k: (len(v), errors(v), sum(r["tokens_total"] for r in v)) for k, v in by_model.items()
    }
    assert client.user("carol").reports.user_usage(since=since) == stats
    with pytest.raises(TenantMissing):
        client.reports.user_usage()


# -- quality -----------------------------------------------------------------------------
def test_error_rate_matches_raw_rows(client: llmbase.LLMBase, loaded: Loaded) -> None:
    rows = client.reports.error_rate()
    raw = group(pick(loaded.rows, tenant=DEFAULT_TENANT), lambda r: (r["model"], r["request_type"]))
    assert {(r.model, r.request_type) for r in rows} == set(raw)
    for r in rows:
        exp = raw[(r.model, r.request_type)]
        assert (r.requests, r.errors) == (len(exp), errors(exp))
        assert close(r.error_rate_pct, 100.0 * errors(exp) / len(exp))
    assert [r.error_rate_pct for r in rows] == sorted((r.error_rate_pct for r in rows), reverse=True)


def check_latency(row: Latency, exp: list[dict[str, Any]]) -> None:
    lat = [r["latency_ms"] for r in exp if r["latency_ms"] is not None]
    assert row.requests == len(exp)
    assert row.latency_count == len(lat)
    assert close(row.mean_ms, statistics.fmean(lat))
    assert row.max_ms == max(lat)
    assert close(row.avg_tokens, sum(r["tokens_total"] for r in exp) / len(exp))
    for q, est in ((0.5, row.p50_ms), (0.95, row.p95_ms), (0.99, row.p99_ms)):
        exact = exact_quantile(lat, q)
        assert est is not None
        assert abs(est - exact) <= histogram.RELATIVE_ERROR * exact + 1e-9, (q, est, exact)


def test_latency_percentiles_within_bound_of_exact(client: llmbase.LLMBase, loaded: Loaded) -> None:
    rows = client.reports.latency()
    raw = group(pick(loaded.rows, tenant=DEFAULT_TENANT), lambda r: (r["request_type"], r["model"]))
    assert {(r.request_type, r.model) for r in rows} == set(raw)
    for row in rows:
        check_latency(row, raw[(row.request_type, row.model)])
    # a filtered window across partial days
    since, until = TODAY - timedelta(days=1, hours=9), NOW
    window = client.admin().reports.latency(since=since, until=until, request_type="chat")
    raw_all = group(pick(loaded.rows, since=since, request_type="chat"), lambda r: r["model"])
    assert {r.model for r in window} == set(raw_all)
    for row in window:
        check_latency(row, raw_all[row.model])


def test_slowest_requests_exact(client: llmbase.LLMBase, loaded: Loaded) -> None:
    since, until = TODAY - timedelta(days=2), TODAY
    rows = client.reports.slowest(since=since, until=until, limit=7)
    raw = [
        r
        for r in pick(loaded.rows, tenant=DEFAULT_TENANT, since=since, until=until)
        if r["latency_ms"] is not None
    ]
    raw.sort(key=lambda r: r["latency_ms"], reverse=True)
    assert [r.id for r in rows] == [r["id"] for r in raw[:7]]
    assert rows[0].latency_ms == raw[0]["latency_ms"]
    everyone = client.admin().reports.slowest(limit=5)
    all_raw = sorted(
        (r for r in loaded.rows if r["latency_ms"] is not None), key=lambda r: r["latency_ms"], reverse=True
    )
    assert [r.id for r in everyone] == [r["id"] for r in all_raw[:5]]
    erin = client.tenant("acme").reports.slowest(user="erin", model="gpt-4o", limit=3)
    exp = [r for r in all_raw if r["user_id"] == loaded.users["erin"] and r["model"] == "gpt-4o"][:3]
    assert [r.id for r in erin] == [r["id"] for r in exp]


async def test_async_reports(aclient: llmbase.AsyncLLMBase, client: llmbase.LLMBase, loaded: Loaded) -> None:
    assert await aclient.reports.error_rate() == client.reports.error_rate()
    assert await aclient.tenant("acme").reports.latency() == client.tenant("acme").reports.latency()


# -- agent runs and conversations --------------------------------------------------------
@pytest.fixture
def runs(client: llmbase.LLMBase, db_url: str) -> list[dict[str, Any]]:
    """Runs of alice and bob with 1-6 iterations each (written as the writer would)."""
    rng = random.Random(3)
    alice = client.users.create("alice").id
    bob = client.users.create("bob").id
    iterations: list[dict[str, Any]] = []
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
        for k in range(40):
            run_id, user = uuid.uuid4(), (alice if k % 3 else bob)
            started = NOW - timedelta(hours=rng.randint(1, 50), minutes=rng.randint(0, 59))
            name = "answer" if k % 2 else "research"
            conn.execute(
                "INSERT INTO llmbase.runs (tenant_id, id, user_id, name, started_at) VALUES (%s, %s, %s, %s, %s)",
                (DEFAULT_TENANT, run_id, user, name, started),
            )
            for i in range(1, rng.randint(1, 6) + 1):
                api, tool = rng.uniform(200, 3000) * (1 + i / 4), rng.choice([0.0, rng.uniform(5, 500)])
                it = {
                    "run_id": run_id,
                    "user_id": user,
                    "name": name,
                    "iteration": i,
                    "started_at": started + timedelta(seconds=10 * i),
                    "api_ms": api,
                    "tool_ms": tool,
                    "total_ms": api + tool + rng.uniform(0, 20),
                }
                conn.execute(
                    "INSERT INTO llmbase.run_iterations (tenant_id, run_id, iteration, started_at, api_ms,"
                    " tool_ms, total_ms) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (DEFAULT_TENANT, run_id, i, it["started_at"], api, tool, it["total_ms"]),
                )
                iterations.append(it)
    return iterations


def test_iteration_statistics_with_median(client: llmbase.LLMBase, runs: list[dict[str, Any]]) -> None:
    stats = client.reports.iterations()
    by_n = group(runs, lambda r: r["iteration"])
    assert [s.iteration for s in stats] == sorted(by_n)
    for s in stats:
        exp = by_n[s.iteration]
        api = [r["api_ms"] for r in exp]
        assert s.samples == len(exp)
        assert close(s.avg_api_ms, statistics.fmean(api))
        assert (s.min_api_ms, s.max_api_ms) == (min(api), max(api))
        # From the rollup histogram: within the stated bound of the lower middle value.
        lower_mid = sorted(api)[(len(api) - 1) // 2]
        assert s.median_api_ms is not None
        assert abs(s.median_api_ms - lower_mid) <= histogram.RELATIVE_ERROR * lower_mid
        assert close(s.avg_tool_ms, statistics.fmean(r["tool_ms"] for r in exp))
        assert close(s.avg_total_ms, statistics.fmean(r["total_ms"] for r in exp))
    well = client.reports.iterations(min_samples=3)
    assert [s.iteration for s in well] == sorted(n for n, v in by_n.items() if len(v) >= 3)
    bob = client.reports.iterations(user="bob", run_name="research")
    exp_bob = group(
        [r for r in runs if r["name"] == "research" and r["user_id"] == client.users.get("bob").id],
        lambda r: r["iteration"],
    )
    assert {s.iteration: s.samples for s in bob} == {k: len(v) for k, v in exp_bob.items()}
    for s in bob:  # a user filter reads the raw iterations: the exact median
        assert close(s.median_api_ms, statistics.median(r["api_ms"] for r in exp_bob[s.iteration]))
    assert client.user("bob").reports.iterations(run_name="research") == bob


def test_iteration_trends_per_hour(client: llmbase.LLMBase, runs: list[dict[str, Any]]) -> None:
    since = NOW - timedelta(hours=24)
    trends = client.reports.iteration_trends(since=since)
    # Rollup reports widen the range to whole hours.
    start = since.replace(minute=0, second=0, microsecond=0)
    exp = group(
        [r for r in runs if r["started_at"] >= start],
        lambda r: r["started_at"].astimezone(UTC).replace(minute=0, second=0, microsecond=0),
    )
    assert {t.hour: t.iterations for t in trends} == {k: len(v) for k, v in exp.items()}
    for t in trends:
        assert close(t.avg_api_ms, statistics.fmean(r["api_ms"] for r in exp[t.hour]))
        assert close(t.avg_total_ms, statistics.fmean(r["total_ms"] for r in exp[t.hour]))


def test_completion_statistics(client: llmbase.LLMBase, db_url: str) -> None:
    alice = client.user("alice")
    done = []
    for k in range(12):
        c = (alice if k % 2 else client).conversations.create(title=f"c{k}")
        if k % 4 != 3:
            c = client.conversations.complete(c.id, total_time_ms=1000 * (k + 1), total_iterations=k % 5)
            done.append(c)
    with psycopg.connect(db_url) as conn:  # spread completion times
        for k, c in enumerate(done):
            conn.execute(
                "UPDATE llmbase.conversations SET completed_at = %s WHERE id = %s",
                (NOW - timedelta(minutes=k), c.id),
            )
    rows = client.reports.completions(limit=5)
    assert [r.conversation_id for r in rows] == [c.id for c in done[:5]]
    for r, c in zip(rows, done, strict=False):
        assert r.total_time_ms == c.total_time_ms
        assert r.total_iterations == c.total_iterations
        expected = c.total_time_ms / c.total_iterations if c.total_time_ms and c.total_iterations else None
        assert close(r.avg_ms_per_iteration, expected)
    mine = alice.reports.completions(limit=100)
    assert {r.conversation_id for r in mine} == {c.id for c in done if c.user_id == alice.scope().user_id}
    recent = client.reports.completions(since=NOW - timedelta(minutes=2, seconds=30), limit=100)
    assert len(recent) == 3


# -- arguments ---------------------------------------------------------------------------
def test_time_arguments_and_validation(client: llmbase.LLMBase, loaded: Loaded) -> None:
    ref = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)
    assert parse_when("7d", now=ref) == ref - timedelta(days=7)
    assert parse_when("24h", now=ref) == ref - timedelta(hours=24)
    assert parse_when("1y", now=ref) == ref - timedelta(days=365)
    assert parse_when("2025-01-31") == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_when("2025-01-31T10:00:00+02:00") == datetime(2025, 1, 31, 8, tzinfo=UTC)
    with pytest.raises(ValidationError):
        parse_when("last tuesday")
    with pytest.raises(ValidationError):
        client.reports.daily(since="1d", until="2d")
    with pytest.raises(NotFound):
        client.reports.cost_by_user(user="nobody")
    with pytest.raises(PermissionDenied):
        client.reports.cost_by_user(tenant="acme")
    # A relative bound is resolved at call time (hour resolution): accept either hour when the
    # call straddles an hour boundary.
    before = datetime.now(UTC)
    got = sum(d.requests for d in client.reports.daily(since="36h"))
    after = datetime.now(UTC)
    assert got in {
        len(pick(loaded.rows, tenant=DEFAULT_TENANT, since=_hour(t - timedelta(hours=36))))
        for t in (before, after)
    }


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


# -- CLI ---------------------------------------------------------------------------------
runner = CliRunner()


def cli(db_url: str, *args: str) -> Any:
    return runner.invoke(app, ["report", *args, "--database-url", db_url], catch_exceptions=False)


def test_cli_reports(client: llmbase.LLMBase, loaded: Loaded, db_url: str) -> None:
    r = cli(db_url, "cost-by-user", "--tenant", "acme", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert sum(d["requests"] for d in data) == len(pick(loaded.rows, tenant=loaded.acme))
    assert {d["external_id"] for d in data} == {"dave", "erin"}
    before = datetime.now(UTC)
    r = cli(db_url, "daily", "--since", "2d", "--csv")
    after = datetime.now(UTC)
    assert r.exit_code == 0, r.output
    table = list(csv.DictReader(io.StringIO(r.output)))
    assert sum(int(t["requests"]) for t in table) in {
        len(pick(loaded.rows, since=_hour(t - timedelta(days=2)))) for t in (before, after)
    }
    r = cli(db_url, "latency", "--tenant", "default", "--model", "gpt-4o")
    assert r.exit_code == 0, r.output
    assert "gpt-4o" in r.output and "p95" in r.output
    r = cli(db_url, "user-usage", "--tenant", "default", "--user", "alice")
    assert r.exit_code == 0, r.output
    assert "alice" in r.output and "by model" in r.output
    for name in (
        "errors",
        "hourly",
        "monthly",
        "today",
        "slowest",
        "iterations",
        "iteration-trends",
        "completions",
    ):
        r = cli(db_url, name)
        assert r.exit_code == 0, (name, r.output)
    r = cli(db_url, "user-usage")
    assert r.exit_code != 0
    r = cli(db_url, "daily", "--since", "yesterday-ish")
    assert r.exit_code == 1 and "since" in r.output


# -- the BI SQL of docs/reports.md runs and agrees -------------------------------------------
def doc_sql_blocks() -> list[str]:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "reports.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```sql\n")[1:]]
    return [b for b in blocks if b.lstrip().startswith(("SELECT", "WITH"))]


def test_docs_bi_queries(loaded: Loaded, db_url: str) -> None:
    blocks = doc_sql_blocks()
    assert len(blocks) >= 5
    with psycopg.connect(db_url) as conn:
        for block in blocks:
            rows = conn.execute(block).fetchall()
            assert rows, block
        latency_block = next(b for b in blocks if "hist_quantile" in b)
        got = conn.execute(latency_block).fetchall()
    by_model = group(loaded.rows, lambda r: r["model"] or "")
    assert {r[0] for r in got} == set(by_model)
    for model, requests, mean_ms, p50, p95, p99 in got:
        lat = [r["latency_ms"] for r in by_model[model] if r["latency_ms"] is not None]
        assert requests == len(by_model[model])
        assert abs(float(mean_ms) - statistics.fmean(lat)) <= 0.05 + 1e-9
        for q, est in ((0.5, p50), (0.95, p95), (0.99, p99)):
            exact = exact_quantile(lat, q)
            assert abs(float(est) - exact) <= histogram.RELATIVE_ERROR * exact + 0.05  # rounded to 0.1


def test_dense_histogram_from_sql_sums() -> None:
    assert dense_histogram([Decimal(2), None, Decimal(0), Decimal(3), None, None], 5) == [2, 0, 0, 3]
    assert dense_histogram([Decimal(4), 1], 3) == [2, 1]  # one call without a latency in bucket 0
    assert dense_histogram(None, 0) == []
