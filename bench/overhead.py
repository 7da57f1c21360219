"""Benchmark: what `client.requests.log()` adds to the caller, while the writer is busy.

A caller thread makes ~1,000 calls/s, each with a ~1 KB record, for `seconds`; each call is
timed with perf_counter_ns. Baseline: the same call to a function that only takes the
keyword arguments (what any logging call costs in Python). Two scenarios: the writer busy
with the caller's own records only, and busier, with a second thread logging another
10,000 records/s into the same writer.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import llmbase
from bench._ingest_common import record, server


def _bare(**fields: Any) -> None:
    return None


def _pct(xs: list[int], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0


def _measure(log: Any, seconds: float, rate: float, rng: random.Random) -> list[int]:
    pc = time.perf_counter_ns
    samples: list[int] = []
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        p = record(rng, i)
        t0 = pc()
        log(
            request_type=p["request_type"],
            provider=p["provider"],
            model=p["model"],
            tokens_prompt=p["tokens_prompt"],
            tokens_completion=p["tokens_completion"],
            latency_ms=p["latency_ms"],
            ttft_ms=p["ttft_ms"],
            status=p["status"],
            request_body=p["request_body"],
            response_body=p["response_body"],
            metadata=p["metadata"],
        )
        samples.append(pc() - t0)
        i += 1
        ahead = i / rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
    samples.sort()
    return samples


def run(seconds: float = 10.0, rate: float = 1000.0) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with server() as (url, tmp):
        client = llmbase.connect(url, migrate=False, ingest_spool_dir=tmp / "spool")
        try:
            req = client.requests
            req.log(model="warm-up")
            req.flush(30)
            bare = _measure(_bare, 2.0, rate, random.Random(1))
            for scenario, load in (
                ("writer busy with these calls", 0.0),
                ("writer busy + 10,000/s more", 10_000.0),
            ):
                stop = threading.Event()

                def background(load: float = load, stop: threading.Event = stop) -> None:
                    rng = random.Random(9)
                    n = 0
                    t0 = time.perf_counter()
                    while not stop.is_set():
                        req.log(**record(rng, n))
                        n += 1
                        ahead = n / load - (time.perf_counter() - t0)
                        if ahead > 0:
                            time.sleep(ahead)

                bg = threading.Thread(target=background) if load else None
                if bg:
                    bg.start()
                before = req.stats()
                got = _measure(req.log, seconds, rate, random.Random(2))
                stop.set()
                if bg:
                    bg.join()
                assert req.flush(120)
                after = req.stats()
                rows.append(
                    {
                        "scenario": scenario,
                        "calls": len(got),
                        "log_p50_us": round(_pct(got, 0.50), 2),
                        "log_p99_us": round(_pct(got, 0.99), 2),
                        "log_p99.9_us": round(_pct(got, 0.999), 1),
                        "added_p50_us": round(_pct(got, 0.50) - _pct(bare, 0.50), 2),
                        "added_p99_us": round(_pct(got, 0.99) - _pct(bare, 0.99), 2),
                        "batches_written": after["batches"] - before["batches"],
                        "records_written": after["written"] - before["written"],
                    }
                )
            rows.append(
                {
                    "scenario": "bare call (baseline)",
                    "calls": len(bare),
                    "log_p50_us": round(_pct(bare, 0.50), 2),
                    "log_p99_us": round(_pct(bare, 0.99), 2),
                    "log_p99.9_us": round(_pct(bare, 0.999), 1),
                    "added_p50_us": 0,
                    "added_p99_us": 0,
                    "batches_written": "",
                    "records_written": "",
                }
            )
        finally:
            client.close()
    return rows
