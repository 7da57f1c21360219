"""Request-log ingest through the HTTP batch endpoint (`POST /v1/ingest/requests`, 4
concurrent httpx clients in threads, batches of 500, uvicorn serving `create_app` in a
subprocess) vs the Python SDK's `client.requests.log()` direct, with the same ~1 KB records.

Two rates per path: *accepted* (the calls returned: records queued for the writer) and
*stored* (the background writer committed every record: for HTTP, each client's last batch
is sent with `?wait=true`; for the SDK, `flush()` returned).

python -m bench.run http_ingest
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import orjson

import llmbase
from llmbase.server import create_app

from ._ingest_common import record, server

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 4
BATCH = 500
BATCHES_PER_CLIENT = 20
N = CLIENTS * BATCH * BATCHES_PER_CLIENT


def _records() -> list[dict[str, Any]]:
    rng = random.Random(7)
    out = []
    for i in range(N):
        r = record(rng, i)
        r.pop("user_id", None)
        r.pop("conversation_id", None)
        out.append(r)
    return out


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(type(value))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app() -> Any:
    """The app factory the uvicorn subprocess runs (`--factory`)."""
    return create_app(llmbase.connect(os.environ["LLMBASE_BENCH_URL"], migrate=False))


@contextlib.contextmanager
def _serve(url: str) -> Iterator[str]:
    port = _port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.http_ingest:app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "LLMBASE_BENCH_URL": url}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the API server did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _http(url: str, client: llmbase.LLMBase, records: list[dict[str, Any]]) -> dict[str, object]:
    key = client.tenant("http").keys.create("bench", scopes=["ingest"]).secret
    bodies = [orjson.dumps({"records": records[i : i + BATCH]}, default=_json) for i in range(0, N, BATCH)]

    *rest, final = bodies  # the final batch is sent alone with ?wait=true: stored

    def worker(w: int) -> int:
        sent = 0
        with httpx.Client(base_url=base, headers=headers, timeout=600) as h:
            for body in rest[w::CLIENTS]:
                r = h.post("/v1/ingest/requests", content=body)
                r.raise_for_status()
                sent += int(r.json()["accepted"])
        return sent

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with _serve(url) as base:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as ex:
            accepted = sum(ex.map(worker, range(CLIENTS)))
        t_accept = time.perf_counter() - t0
        r = httpx.post(f"{base}/v1/ingest/requests?wait=true", content=final, headers=headers, timeout=600)
        r.raise_for_status()
        assert r.json()["flushed"] is True
        t_store = time.perf_counter() - t0
        accepted += int(r.json()["accepted"])
    assert accepted == N, accepted
    row = _row(f"HTTP batch ({CLIENTS} clients x {BATCH}/batch)", t_accept, t_store)
    row["accepted rec/s"] = f"{(N - BATCH) / t_accept:,.0f}"  # before the final batch
    return row


def _sdk(client: llmbase.LLMBase, records: list[dict[str, Any]]) -> dict[str, object]:
    log = client.tenant("sdk").requests.log
    copies = [dict(r) for r in records]
    t0 = time.perf_counter()
    for r in copies:
        log(**r)
    t_accept = time.perf_counter() - t0
    client.requests.flush(600)
    t_store = time.perf_counter() - t0
    return _row("SDK log() direct (1 thread)", t_accept, t_store)


def _row(path: str, t_accept: float, t_store: float) -> dict[str, object]:
    return {
        "path": path,
        "records": f"{N:,}",
        "accepted s": f"{t_accept:.2f}",
        "accepted rec/s": f"{N / t_accept:,.0f}",
        "stored s": f"{t_store:.2f}",
        "stored rec/s": f"{N / t_store:,.0f}",
    }


def _count(url: str, slug: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM llmbase.requests r JOIN llmbase.tenants t ON t.id = r.tenant_id"
            " WHERE t.slug = %s",
            (slug,),
        ).fetchone()
    return int(row[0]) if row else 0


def run() -> list[dict[str, object]]:
    records = _records()
    with server() as (url, _tmp), llmbase.connect(url, migrate=False) as client:
        for slug in ("http", "sdk"):
            client.admin().tenants.create(slug)
        rows = [_http(url, client, records), _sdk(client, records)]
        for slug in ("http", "sdk"):
            stored = _count(url, slug)
            assert stored == N, (slug, stored)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
