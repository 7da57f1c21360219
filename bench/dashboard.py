"""Benchmark: the dashboard's JSON endpoints at 10 million logged requests.

Reuses the data of `python -m bench.run analytics` (bench/analytics.py: 10M calls over 90
days in 3 tenants, rollups built; generated there first if the data dir is empty). Serves
create_app on uvicorn (a thread, loopback) and calls each endpoint as the largest tenant
(60% of the calls, ~6M rows) with a read API key, over one keep-alive httpx connection:
the overview for each range and its top-users part (which the page fetches in parallel),
the request explorer's first page unfiltered and with a model / status / user filter,
its facets, and one request's detail. Reported: p50 and p95
of the round trip (an upper bound of the server time: the client is on the same host) and
the response size. Goal: p95 <= 100 ms per page.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import threading
import time
from typing import Any

import httpx
import psycopg
import uvicorn

import llmbase
from bench import analytics
from llmbase import migrate
from llmbase.embedded import EmbeddedServer
from llmbase.server.app import create_app

RUNS = int(os.environ.get("LLMBASE_BENCH_DASH_RUNS", "40"))
GOAL_MS = 100.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(client: llmbase.LLMBase) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(client), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def _time(http: httpx.Client, path: str, params: dict[str, str], runs: int) -> dict[str, Any]:
    for _ in range(3):  # warm: connection, key cache, plan cache
        http.get(path, params=params).raise_for_status()
    samples = []
    size = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        r = http.get(path, params=params)
        samples.append((time.perf_counter() - t0) * 1000.0)
        r.raise_for_status()
        size = len(r.content)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(0.95 * (len(samples) - 1) + 0.5))]
    return {"p50_ms": statistics.median(samples), "p95_ms": p95, "bytes": size}


def _ensure_data(url: str, client: llmbase.LLMBase) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM llmbase.requests").fetchone()
        have = int(row[0]) if row else 0
    if have == 0:
        print(f"generating {analytics.ROWS:,} calls into {analytics.DATA_DIR} ...", flush=True)
        stats = analytics.DATA_DIR.parent / "load.json"
        stats.write_text(json.dumps(analytics.generate(url, client, analytics.ROWS)))
        have = analytics.ROWS
    return have


def run(runs: int = RUNS) -> list[dict[str, object]]:
    server = EmbeddedServer(analytics.DATA_DIR)
    url = server.start()
    migrate.upgrade(url)
    client = llmbase.connect(url, migrate=False)
    total = _ensure_data(url, client)
    tenant = client.tenant("default")
    created = tenant.keys.create("bench-dashboard", scopes=["read"])
    uv, thread, base = _serve(client)
    rows: list[dict[str, object]] = []
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {created.secret}"}, timeout=60
        ) as http:
            first = http.get("/ui/api/requests", params={"range": "7d"}).json()["items"]
            one = first[0]
            model = one["model"]
            user = next((r["user_external_id"] for r in first if r["user_external_id"]), None)
            cases: list[tuple[str, str, dict[str, str]]] = [
                ("overview 24h", "/ui/api/overview", {"range": "24h"}),
                ("overview 7d", "/ui/api/overview", {"range": "7d"}),
                ("overview 30d", "/ui/api/overview", {"range": "30d"}),
                ("overview 90d", "/ui/api/overview", {"range": "90d"}),
                ("overview users 7d", "/ui/api/overview/users", {"range": "7d"}),
                ("overview users 90d", "/ui/api/overview/users", {"range": "90d"}),
                ("requests 7d", "/ui/api/requests", {"range": "7d"}),
                ("requests 90d model=" + model, "/ui/api/requests", {"range": "90d", "model": model}),
                ("requests 90d status=error", "/ui/api/requests", {"range": "90d", "status": "error"}),
                ("requests facets", "/ui/api/requests/facets", {}),
                ("request detail", f"/ui/api/requests/{one['id']}", {"at": one["created_at"]}),
            ]
            if user:
                cases.append(("requests 90d user", "/ui/api/requests", {"range": "90d", "user": user}))
            for name, path, params in cases:
                m = _time(http, path, params, runs)
                rows.append(
                    {
                        "endpoint": name,
                        "logged requests": f"{total:,}",
                        "p50 ms": f"{m['p50_ms']:.1f}",
                        "p95 ms": f"{m['p95_ms']:.1f}",
                        "response KB": f"{m['bytes'] / 1024:.1f}",
                        f"p95 <= {GOAL_MS:.0f} ms": "yes" if m["p95_ms"] <= GOAL_MS else "no",
                    }
                )
                print(rows[-1], flush=True)
    finally:
        uv.should_exit = True
        thread.join(10)
        tenant.keys.revoke(created.key.id)
        client.close()
        server.release()
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
