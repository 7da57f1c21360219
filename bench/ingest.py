"""Benchmark: request-log ingestion, records/s persisted into the embedded server.

Side by side in one run, on the same table, indexes and ~1 KB records:

- sdk: `client.requests.log()` for every record, then `flush()`; measured from the first
  log() to flush() returning (everything committed, rollups and profiles included). The
  producer outruns any writer, so the queue is sized to hold the run (ingest_queue_max).
- raw COPY: the same rows, already normalised and serialised, binary COPY into
  llmbase.requests in batches of 5,000 per transaction: the limit.
- INSERT per call: one autocommit INSERT per record, what the seeds do (fewer records).

Each is run `repeats` times, alternating, after a TRUNCATE; the median is reported.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

import llmbase
from bench._ingest_common import record, server, truncate
from llmbase.ingest.records import REQUEST_COLUMNS, Normaliser

TENANT = UUID(int=1)
COLS = [c for c, _ in REQUEST_COLUMNS]


class _Marker:
    pass


class _JsonbText(Dumper):
    format = Format.BINARY
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str(obj).encode()


def _rows(payloads: list[dict[str, Any]]) -> list[list[Any]]:
    n = Normaliser(body_max_bytes=256 * 1024, metadata_max_bytes=256 * 1024, scrub=True)
    out = []
    for p in payloads:
        row = n.request(TENANT, dict(p)).row
        out.append([TENANT, *[row.get(c) for c in COLS[1:]]])
    return out


def raw_copy(url: str, rows: list[list[Any]]) -> float:
    stmt = sql.SQL("COPY llmbase.requests ({}) FROM STDIN WITH (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, COLS))
    )
    with psycopg.connect(url) as conn:
        conn.adapters.register_dumper(_Marker, _JsonbText)
        conn.execute("SELECT llmbase.ensure_request_partitions(current_date - 1, current_date + 1)")
        conn.commit()
        t0 = time.perf_counter()
        for i in range(0, len(rows), 5000):
            with conn.cursor() as cur, cur.copy(stmt) as cp:
                cp.set_types([t for _, t in REQUEST_COLUMNS])
                for row in rows[i : i + 5000]:
                    cp.write_row(row)
            conn.commit()
        return time.perf_counter() - t0


def insert_per_call(url: str, rows: list[list[Any]]) -> float:
    stmt = sql.SQL("INSERT INTO llmbase.requests ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, COLS)),
        sql.SQL(", ").join(
            sql.SQL("%s::jsonb") if t == "jsonb" else sql.Placeholder() for _, t in REQUEST_COLUMNS
        ),
    )
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for row in rows:
            conn.execute(stmt, row)
        return time.perf_counter() - t0


def sdk(url: str, tmp: Path, payloads: list[dict[str, Any]], redact: bool = True) -> tuple[float, float]:
    client = llmbase.connect(
        url,
        migrate=False,
        ingest_spool_dir=tmp / "spool",
        ingest_queue_max=len(payloads) + 10,
        redact_secrets=redact,
    )
    try:
        req = client.requests
        req.log(model="warm-up")
        req.flush(60)
        batch = [dict(p) for p in payloads]
        t0 = time.perf_counter()
        for p in batch:
            req.log(**p)
        logged = time.perf_counter() - t0
        assert req.flush(600), req.stats()
        total = time.perf_counter() - t0
        st = req.stats()
        assert (st["dropped"], st["spooled"], st["errors"]) == (0, 0, 0), st
    finally:
        client.close()
    return total, logged


def stages(n: int = 20_000, repeats: int = 5) -> list[dict[str, object]]:
    """CPU per row of the writer's stages, without a server: normalising (JSON, redaction,
    the COPY row), formatting the binary COPY data, summing the rollup deltas. Medians of
    `repeats` passes over `n` fresh ~1 KB records (`python -m bench.ingest stages`)."""
    import psycopg_binary._psycopg as c  # psycopg's C formatter, as COPY uses it
    from psycopg.adapt import AdaptersMap
    from psycopg.types.string import BytesBinaryDumper

    from llmbase._ids import uuid7
    from llmbase.ingest.sinks import postgres as sink

    rng = random.Random(42)
    payloads = [record(rng, i) for i in range(n)]
    for p in payloads:
        p["id"], p["created_at"] = uuid7(), datetime.now(UTC)
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_dumper(None, BytesBinaryDumper)

    class _Context:
        connection = None

        def __init__(self) -> None:
            self.adapters = adapters

    tx = c.Transformer(_Context())
    tx.set_dumper_types([adapters.types.get_oid(t) for t in sink._COPY_TYPES], Format.BINARY)
    results: dict[str, list[float]] = {
        "normalise (JSON, redaction, COPY row)": [],
        "COPY format": [],
        "rollup deltas": [],
    }
    for scrub in (True, False):
        norm = Normaliser(body_max_bytes=256 * 1024, metadata_max_bytes=256 * 1024, scrub=scrub)
        key = "normalise (JSON, redaction, COPY row)" if scrub else "normalise, redaction off"
        results.setdefault(key, [])
        for _ in range(repeats):
            t0 = time.process_time()
            rows = [  # 32 at a time, as the writer does (Record.prefetch)
                r.values
                for k in range(0, n, 32)
                for r in norm.requests([(TENANT, p) for p in payloads[k : k + 32]])
            ]
            t1 = time.process_time()
            results[key].append((t1 - t0) / n * 1e6)
            if not scrub:
                continue
            out = bytearray()
            for v in rows:
                c.format_row_binary(v, tx, out)
            t2 = time.process_time()
            sink.PostgresSink._deltas(rows)
            t3 = time.process_time()
            results["COPY format"].append((t2 - t1) / n * 1e6)
            results["rollup deltas"].append((t3 - t2) / n * 1e6)
    # Instrumented calls arrive without cost_usd: the writer prices them from the catalog.
    from llmbase import pricing

    unpriced = [
        {**p, "cost_usd": None, "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"])}
        for p in payloads
    ]
    key = "price from the catalog (no cost_usd given)"
    results[key] = []
    for _ in range(repeats):
        pricing._catalog.cache_clear()
        t0 = time.process_time()
        for p in unpriced:
            pricing.cost_of(p)
        results[key].append((time.process_time() - t0) / n * 1e6)
    return [{"stage": k, "us_per_row": f"{statistics.median(v):.1f}"} for k, v in results.items()]


def run(n: int = 100_000, n_insert: int = 5_000, repeats: int = 3) -> list[dict[str, object]]:
    rng = random.Random(42)
    payloads = [record(rng, i) for i in range(n)]
    rows = _rows(payloads)
    size = sum(
        len(str(r[COLS.index("request_body")])) + len(str(r[COLS.index("response_body")])) for r in rows
    )
    times: dict[str, list[float]] = {"sdk": [], "raw": [], "insert": [], "log": [], "plain": []}
    with server() as (url, tmp):
        for _ in range(repeats):
            truncate(url)
            times["raw"].append(raw_copy(url, rows))
            truncate(url)
            total, logged = sdk(url, tmp, payloads)
            times["sdk"].append(total)
            times["log"].append(logged)
            truncate(url)
            times["plain"].append(sdk(url, tmp, payloads, redact=False)[0])
            truncate(url)
            times["insert"].append(insert_per_call(url, rows[:n_insert]))
        truncate(url)
    raw_rate = n / statistics.median(times["raw"])

    def row(name: str, count: int, key: str, note: str) -> dict[str, object]:
        secs = statistics.median(times[key])
        rate = count / secs
        return {
            "method": name,
            "records": count,
            "median_s": round(secs, 2),
            "records_per_s": f"{rate:,.0f}",
            "vs_raw_copy": f"{100 * rate / raw_rate:.0f}%",
            "note": note,
        }

    avg = size / n + 300
    return [
        row(
            "SDK: log() + flush()",
            n,
            "sdk",
            f"COPY + rollups + profiles, {repeats} runs; log() loop alone {n / statistics.median(times['log']):,.0f}/s",
        ),
        row("SDK, built-in redaction off", n, "plain", "redact_secrets=False"),
        row("raw binary COPY (the limit)", n, "raw", "prepared rows, 5,000 per transaction"),
        row("one autocommit INSERT per call", n_insert, "insert", "what the seeds do"),
        {
            "method": "record size",
            "records": n,
            "median_s": "",
            "records_per_s": "",
            "vs_raw_copy": "",
            "note": f"~{avg:,.0f} bytes per row (bodies {size / n:,.0f} B), 5 secondary indexes",
        },
    ]


if __name__ == "__main__":  # python -m bench.ingest stages
    if sys.argv[1:] == ["stages"]:
        for r in stages():
            print(f"{r['stage']:40s} {r['us_per_row']:>6s} us/row")
