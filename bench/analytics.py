"""Benchmark: every report at 10 million logged requests, from the rollups through the SDK,
against the seeds' GROUP BY over the raw rows for the same figure.

Data (generated once per data dir and reused; LLMBASE_BENCH_ROWS sets the size, default
10,000,000; LLMBASE_BENCH_DIR the embedded server's data dir): 3 tenants (60/30/10% of the
traffic), 200 users (Zipf-like activity, each sticking to a few of the 8 models), 4 request
types, 90 days with a daily and weekly rhythm, lognormal latencies per model, ~3% errors,
~3% calls without a known price, no bodies (they only slow the raw scans down). Written by
text COPY in daily batches, then rollups by llmbase.rollups.rebuild_rollups. Agent runs
(iterations) and completed conversations are generated in SQL for the run reports.

Timings are the median of several runs of the largest tenant's reports (tenant-wide client,
under RLS) vs the raw query as the owner with an explicit tenant filter.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

import llmbase
from llmbase import histogram, migrate
from llmbase.embedded import EmbeddedServer
from llmbase.rollups import rebuild_rollups

ROWS = int(os.environ.get("LLMBASE_BENCH_ROWS", "10000000"))
DATA_DIR = Path(os.environ.get("LLMBASE_BENCH_DIR", f"/tmp/llmbase-bench-analytics-{os.getuid()}/pgdata"))
DAYS = 90
GOAL_MS = 50.0

# model: (request type, provider, median latency ms, $ per Mtok in, $ per Mtok out, share)
MODELS = {
    "gpt-4o": ("chat", "openai", 1400, 2.5, 10.0, 0.18),
    "gpt-4o-mini": ("chat", "openai", 700, 0.15, 0.6, 0.30),
    "claude-sonnet-4": ("chat", "anthropic", 1800, 3.0, 15.0, 0.14),
    "claude-haiku-3.5": ("chat", "anthropic", 600, 0.8, 4.0, 0.10),
    "o3-mini": ("chat", "openai", 5000, 1.1, 4.4, 0.05),
    "text-embedding-3-small": ("embedding", "openai", 120, 0.02, 0.0, 0.15),
    "whisper-1": ("transcription", "openai", 2500, 6.0, 0.0, 0.05),
    "gpt-image-1": ("image", "openai", 9000, 5.0, 40.0, 0.03),
}
TENANTS = (("default", 0.6, 120), ("acme", 0.3, 50), ("globex", 0.1, 30))
STATUSES = (("success", 0.97), ("error", 0.012), ("rate_limited", 0.01), ("timeout", 0.008))
COLS = (
    "tenant_id, created_at, id, request_type, provider, model, user_id, status, http_status,"
    " tokens_prompt, tokens_completion, tokens_total, cost_usd, cost_unknown, latency_ms, ttft_ms, stream"
)
NULL = "\\N"  # COPY text format
HTTP = {"success": "200", "error": "500", "rate_limited": "429", "timeout": NULL}


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


class Population:
    """Tenants, users (with their favourite models) and the traffic shape."""

    def __init__(self, rng: random.Random, tenants: dict[str, str], users: dict[str, list[str]]) -> None:
        self.tenants = [(tenants[slug], share) for slug, share, _ in TENANTS]
        self.users: dict[str, tuple[list[str | None], list[float]]] = {}
        self.models: dict[str | None, tuple[list[str], list[float]]] = {}
        names = list(MODELS)
        for tid, ids in users.items():
            weights = [1 / (rank + 1) ** 0.8 for rank in range(len(ids))]
            self.users[tid] = ([*ids, None], [*weights, sum(weights) * 0.05])
            for uid in ids:
                favourite = rng.sample(names, rng.randint(2, 4))
                self.models[uid] = (favourite, [MODELS[m][5] * rng.uniform(0.5, 2) for m in favourite])
        self.models[None] = (names, [MODELS[m][5] for m in names])

    @staticmethod
    def per_day(total: int) -> list[int]:
        """Calls per day over DAYS: weekdays busier, slow growth."""
        w = [(0.6 if d % 7 in (5, 6) else 1.0) * (0.8 + 0.4 * d / DAYS) for d in range(DAYS)]
        s = sum(w)
        counts = [int(total * x / s) for x in w]
        counts[-1] += total - sum(counts)
        return counts


HOUR_WEIGHTS = [0.3 + math.sin(math.pi * max(0, h - 6) / 16) ** 2 if 6 <= h <= 22 else 0.3 for h in range(24)]


def day_lines(rng: random.Random, pop: Population, day: datetime, n: int) -> list[str]:
    hours = rng.choices(range(24), HOUR_WEIGHTS, k=n)
    tenants = rng.choices([t for t, _ in pop.tenants], [s for _, s in pop.tenants], k=n)
    statuses = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES], k=n)
    lines = []
    for i in range(n):
        tid = tenants[i]
        ids, weights = pop.users[tid]
        uid = rng.choices(ids, weights)[0]
        favourite, mw = pop.models[uid]
        model = rng.choices(favourite, mw)[0]
        rtype, provider, median, pin, pout, _ = MODELS[model]
        status = statuses[i]
        at = day + timedelta(hours=hours[i], seconds=rng.random() * 3600)
        latency = median * rng.lognormvariate(0, 0.6) * (0.3 if status != "success" else 1.0)
        if rtype == "chat":
            prompt, completion = int(rng.lognormvariate(6.5, 0.9)), int(rng.lognormvariate(5.5, 0.8))
        elif rtype == "embedding":
            prompt, completion = int(rng.lognormvariate(5.0, 1.0)), 0
        else:
            prompt, completion = int(rng.lognormvariate(4.5, 0.5)), int(rng.lognormvariate(4, 0.5))
        if status != "success":
            completion = 0
        unknown = rng.random() < 0.03
        cost = NULL if unknown else f"{(prompt * pin + completion * pout) / 1e6:.10f}"
        stream = rtype == "chat" and rng.random() < 0.5
        ttft = f"{latency * rng.uniform(0.05, 0.3):.3f}" if stream else NULL
        lines.append(
            f"{tid}\t{at.isoformat()}\t{_uuid(rng)}\t{rtype}\t{provider}\t{model}\t{uid or NULL}\t{status}\t"
            f"{HTTP[status]}\t{prompt}\t{completion}\t{prompt + completion}\t{cost}\t{'t' if unknown else 'f'}\t"
            f"{latency:.3f}\t{ttft}\t{'t' if stream else 'f'}\n"
        )
    return lines


def generate(url: str, client: llmbase.LLMBase, total: int) -> dict[str, Any]:
    """Load `total` calls (COPY, one batch per day) plus runs and conversations."""
    rng = random.Random(2024)
    tenants = {"default": str(client.scope().tenant_id)}
    users: dict[str, list[str]] = {}
    for slug, _, n_users in TENANTS:
        if slug != "default":
            tenants[slug] = str(client.tenants.create(slug).id)
        scoped = client.tenant(slug)
        users[tenants[slug]] = [str(scoped.users.ensure(f"{slug}-user-{k:03d}").id) for k in range(n_users)]
    pop = Population(rng, tenants, users)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS - 1)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute(
            "SELECT llmbase.ensure_request_partitions(%s, %s)", (start.date(), end.date() + timedelta(days=1))
        )
        conn.commit()
        for d, n in enumerate(pop.per_day(total)):
            lines = day_lines(rng, pop, start + timedelta(days=d), n)
            with conn.cursor().copy(f"COPY llmbase.requests ({COLS}) FROM STDIN") as cp:
                for k in range(0, len(lines), 20000):
                    cp.write("".join(lines[k : k + 20000]))
            conn.commit()
            print(f"  day {d + 1}/{DAYS}: {n:,} calls ({time.perf_counter() - t0:,.0f} s)", flush=True)
        copy_s = time.perf_counter() - t0
        _runs_and_conversations(conn, tenants["default"], users[tenants["default"]], start, end)
        conn.commit()
    t1 = time.perf_counter()
    rb = rebuild_rollups(url, start, end + timedelta(days=1))
    rollup_s = time.perf_counter() - t1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {"copy_s": copy_s, "rollup_s": rollup_s, "hour_rows": rb.hour_rows, "day_rows": rb.day_rows}


def _runs_and_conversations(
    conn: psycopg.Connection[Any], tenant: str, users: list[str], start: datetime, end: datetime
) -> None:
    """200k agent runs (1-8 iterations) and 50k completed conversations, in SQL."""
    conn.execute(
        "INSERT INTO llmbase.runs (tenant_id, id, user_id, name, status, started_at, iteration_count)"
        " SELECT %(t)s, gen_random_uuid(), (%(u)s::uuid[])[1 + (random() * (cardinality(%(u)s::uuid[]) - 1))::int],"
        " (ARRAY['answer', 'research', 'code'])[1 + (g %% 3)], 'success',"
        " %(s)s::timestamptz + random() * (%(e)s::timestamptz - %(s)s::timestamptz), 1 + (random() * 7)::int"
        " FROM generate_series(1, 200000) AS g",
        {"t": tenant, "u": users, "s": start, "e": end},
    )
    conn.execute(
        "INSERT INTO llmbase.run_iterations (tenant_id, run_id, iteration, started_at, ended_at, total_ms, api_ms, tool_ms)"
        " SELECT r.tenant_id, r.id, i, r.started_at + i * interval '5 seconds', NULL, a + t + 5, a, t"
        " FROM llmbase.runs r, generate_series(1, r.iteration_count) AS i,"
        " LATERAL (SELECT 800 * exp(0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) * (1 + i / 10.0) AS a,"
        "                 CASE WHEN random() < 0.6 THEN 50 + random() * 500 ELSE 0 END AS t"
        "          WHERE r.id IS NOT NULL) AS x"
    )
    conn.execute(
        "INSERT INTO llmbase.conversations (tenant_id, user_id, title, completed_at, total_time_ms, total_iterations)"
        " SELECT %(t)s, (%(u)s::uuid[])[1 + (random() * (cardinality(%(u)s::uuid[]) - 1))::int], 'c' || g,"
        " %(s)s::timestamptz + random() * (%(e)s::timestamptz - %(s)s::timestamptz),"
        " (1000 + random() * 60000)::bigint, 1 + (random() * 7)::int"
        " FROM generate_series(1, 50000) AS g",
        {"t": tenant, "u": users, "s": start, "e": end},
    )


# -- the seeds' queries over the raw rows (owner connection, explicit tenant) ------------------
RAW: dict[str, str] = {
    "cost_by_user": "SELECT user_id, count(*) AS total_requests, sum(cost_usd) AS total_cost_usd,"
    " sum(tokens_total) AS total_tokens FROM llmbase.requests WHERE tenant_id = %(t)s"
    " GROUP BY user_id ORDER BY total_cost_usd DESC",
    "error_rate": "SELECT model, request_type, count(*) AS total_requests,"
    " sum(CASE WHEN status <> 'success' THEN 1 ELSE 0 END) AS failed_requests,"
    " round(100.0 * sum(CASE WHEN status <> 'success' THEN 1 ELSE 0 END) / count(*), 2) AS error_rate_pct"
    " FROM llmbase.requests WHERE tenant_id = %(t)s GROUP BY model, request_type ORDER BY error_rate_pct DESC",
    "latency": "SELECT request_type, model, count(*) AS request_count, avg(latency_ms) AS avg_latency_ms,"
    " percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS pct,"
    " max(latency_ms), avg(tokens_total) AS avg_tokens FROM llmbase.requests WHERE tenant_id = %(t)s"
    " GROUP BY request_type, model ORDER BY request_type, avg_latency_ms DESC",
    "latency_7d": "SELECT request_type, model, count(*) AS request_count, avg(latency_ms) AS avg_latency_ms,"
    " percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS pct,"
    " max(latency_ms), avg(tokens_total) AS avg_tokens FROM llmbase.requests WHERE tenant_id = %(t)s"
    " AND created_at >= %(week)s GROUP BY request_type, model ORDER BY request_type, avg_latency_ms DESC",
    "latency_30d": "SELECT request_type, model, count(*) AS request_count, avg(latency_ms) AS avg_latency_ms,"
    " percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS pct,"
    " max(latency_ms), avg(tokens_total) AS avg_tokens FROM llmbase.requests WHERE tenant_id = %(t)s"
    " AND created_at >= %(month)s GROUP BY request_type, model ORDER BY request_type, avg_latency_ms DESC",
    "daily": "SELECT (created_at AT TIME ZONE 'UTC')::date AS date, count(*) AS total_requests,"
    " sum(cost_usd) AS total_cost_usd, sum(tokens_total) AS total_tokens FROM llmbase.requests"
    " WHERE tenant_id = %(t)s GROUP BY 1 ORDER BY 1 DESC",
    "daily_30d": "SELECT (created_at AT TIME ZONE 'UTC')::date AS date, count(*) AS total_requests,"
    " sum(cost_usd) AS total_cost_usd, sum(tokens_total) AS total_tokens FROM llmbase.requests"
    " WHERE tenant_id = %(t)s AND created_at >= %(month)s GROUP BY 1 ORDER BY 1 DESC",
    "hourly_7d": "SELECT date_trunc('hour', created_at) AS hour, count(*), sum(cost_usd), avg(latency_ms)"
    " FROM llmbase.requests WHERE tenant_id = %(t)s AND created_at >= %(week)s GROUP BY 1 ORDER BY 1 DESC",
    "monthly": "SELECT date_trunc('month', created_at) AS month, count(*), sum(cost_usd), sum(tokens_total),"
    " count(DISTINCT user_id) FROM llmbase.requests WHERE tenant_id = %(t)s GROUP BY 1 ORDER BY 1 DESC",
    "today": "SELECT count(*), sum(cost_usd), sum(tokens_total), count(DISTINCT user_id) FROM llmbase.requests"
    " WHERE tenant_id = %(t)s AND created_at >= %(today)s",
    "user_usage": "SELECT request_type, model, count(*), sum(tokens_total), sum(cost_usd), avg(latency_ms)"
    " FROM llmbase.requests WHERE tenant_id = %(t)s AND user_id = %(u)s"
    " GROUP BY GROUPING SETS ((), (request_type), (model))",
    "slowest_7d": "SELECT id, created_at, latency_ms, model FROM llmbase.requests WHERE tenant_id = %(t)s"
    " AND created_at >= %(week)s ORDER BY latency_ms DESC NULLS LAST LIMIT 10",
    "iterations": "SELECT iteration, count(*) AS sample_size, avg(api_ms), min(api_ms), max(api_ms),"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY api_ms) FROM llmbase.run_iterations"
    " WHERE tenant_id = %(t)s GROUP BY iteration HAVING count(*) >= 3 ORDER BY iteration",
    "iteration_trends_7d": "SELECT date_trunc('hour', started_at), avg(api_ms), avg(total_ms), avg(tool_ms), count(*)"
    " FROM llmbase.run_iterations WHERE tenant_id = %(t)s AND started_at >= %(week)s GROUP BY 1 ORDER BY 1 DESC",
    "completions": "SELECT id, total_iterations, total_time_ms, total_time_ms / nullif(total_iterations, 0),"
    " completed_at FROM llmbase.conversations WHERE tenant_id = %(t)s AND total_time_ms IS NOT NULL"
    " ORDER BY completed_at DESC LIMIT 10",
}


def _fetch(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _check(name: str, sdk: Any, raw: list[tuple[Any, ...]]) -> str:
    """Do the SDK's figures equal the raw query's? (percentiles: within the stated bound)"""
    if name == "cost_by_user":
        ok = {r.user_id: (r.requests, r.cost_usd) for r in sdk} == {
            u: (n, c or Decimal(0)) for u, n, c, _ in raw
        }
    elif name == "error_rate":
        ok = {(r.model, r.request_type): r.errors for r in sdk} == {(m, t): e for m, t, _, e, _ in raw}
    elif name.startswith("latency"):
        exp = {(t, m): p for t, m, _, _, p, _, _ in raw}
        ok = all(
            abs(est - truth) <= histogram.RELATIVE_ERROR * truth * (1 + 1e-9)
            for r in sdk
            for est, truth in zip((r.p50_ms, r.p95_ms, r.p99_ms), exp[(r.request_type, r.model)], strict=True)
        )
    elif name.startswith("daily"):
        ok = [(r.requests, r.cost_usd) for r in sdk] == [(n, c) for _, n, c, _ in raw]
    elif name == "monthly":
        ok = [(r.requests, r.active_users) for r in sdk] == [(n, u) for _, n, _, _, u in raw]
    elif name == "today":
        ok = sdk.requests == raw[0][0]
    elif name == "user_usage":
        ok = sdk.requests == next(r[2] for r in raw if r[0] is None and r[1] is None)
    elif name == "slowest_7d":
        ok = [r.id for r in sdk] == [r[0] for r in raw]
    elif name == "iterations":
        ok = [(r.iteration, r.samples) for r in sdk] == [(r[0], r[1]) for r in raw]
    elif name == "completions":
        ok = [r.conversation_id for r in sdk] == [r[0] for r in raw]
    else:
        ok = len(sdk) == len(raw)
    return "yes" if ok else "NO"


def run(runs: int = 7) -> list[dict[str, object]]:
    server = EmbeddedServer(DATA_DIR)
    url = server.start()
    migrate.upgrade(url)
    client = llmbase.connect(url, migrate=False)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM llmbase.requests").fetchone()
        have = int(row[0]) if row else 0
    stats = DATA_DIR.parent / "load.json"
    if have != ROWS:
        if have:
            raise SystemExit(
                f"{DATA_DIR} holds {have:,} calls, not {ROWS:,}: remove it or set LLMBASE_BENCH_ROWS"
            )
        print(f"generating {ROWS:,} calls into {DATA_DIR} (takes minutes) ...", flush=True)
        stats.write_text(json.dumps(generate(url, client, ROWS)))
    load: dict[str, Any] = json.loads(stats.read_text()) if stats.exists() else {}
    try:
        return _measure(url, client, runs, load)
    finally:
        client.close()
        server.release()


def _measure(url: str, client: llmbase.LLMBase, runs: int, load: dict[str, Any]) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)  # rollup reports have hour resolution
    week, month, today = hour - timedelta(days=7), hour - timedelta(days=30), hour.replace(hour=0)
    tenant = client.tenant("default")
    tid = tenant.scope().tenant_id
    top = tenant.reports.cost_by_user(limit=2)
    user = next(r.user_id for r in top if r.user_id is not None)
    rep = tenant.reports
    sdk: dict[str, Callable[[], Any]] = {
        "cost_by_user": rep.cost_by_user,
        "error_rate": rep.error_rate,
        "latency": rep.latency,
        "latency_7d": lambda: rep.latency(since=week),
        "latency_30d": lambda: rep.latency(since=month),
        "daily": rep.daily,
        "daily_30d": lambda: rep.daily(since=month),
        "hourly_7d": lambda: rep.hourly(since=week),
        "monthly": rep.monthly,
        "today": rep.today,
        "user_usage": lambda: rep.user_usage(user),
        "slowest_7d": lambda: rep.slowest(since=week),
        "iterations": lambda: rep.iterations(min_samples=3),
        "iteration_trends_7d": lambda: rep.iteration_trends(since=week),
        "completions": rep.completions,
    }
    params = {"t": tid, "u": user, "week": week, "month": month, "today": today}
    out: list[dict[str, object]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM llmbase.requests WHERE tenant_id = %s", (tid,)).fetchone()
        rollups = conn.execute(
            "SELECT count(*) FILTER (WHERE grain = 'hour'), count(*) FILTER (WHERE grain = 'day')"
            " FROM llmbase.request_rollups"
        ).fetchone()
        for name, call in sdk.items():
            ms = _median_ms(call, runs)
            raw_q = RAW[name]
            raw_ms = _median_ms(functools.partial(_fetch, conn, raw_q, params), max(3, runs // 2))
            match = _check(name, call(), conn.execute(raw_q, params).fetchall())
            out.append(
                {
                    "report": name,
                    "llmbase_p50_ms": round(ms, 1),
                    "raw_group_by_p50_ms": round(raw_ms, 1),
                    "speedup": f"{raw_ms / ms:,.0f}x",
                    "goal_50ms": "met" if ms <= GOAL_MS else "missed",
                    "same_figures": match,
                }
            )
            print(out[-1], flush=True)
    assert n is not None
    assert rollups is not None
    note = f"tenant 'default': {n[0]:,} of {ROWS:,} calls; rollups: {rollups[0]:,} hour + {rollups[1]:,} day rows"
    if load:
        note += (
            f"; generated once: COPY {load['copy_s']:,.0f} s ({ROWS / load['copy_s']:,.0f} rows/s),"
            f" rebuild_rollups {load['rollup_s']:,.0f} s"
        )
    out.append(
        {
            "report": note,
            "llmbase_p50_ms": "",
            "raw_group_by_p50_ms": "",
            "speedup": "",
            "goal_50ms": "",
            "same_figures": "",
        }
    )
    return out


if __name__ == "__main__":
    import sys

    from bench.run import table

    rows = run(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    print(table(rows))
