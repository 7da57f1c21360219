"""Benchmark: memory while logging 1,000,000 records with the database stopped.

The client points at a server that is not running, so every record goes to the disk spool
(through the bounded queue). Resident set size (RSS) is sampled every 50 ms; reported: the
RSS before, its peak and at the end, and the spool on disk. Memory is bounded by the queue
(ingest_queue_max records) and one batch, not by the number of records logged.
"""

from __future__ import annotations

import os
import random
import resource
import tempfile
import threading
import time
from pathlib import Path

import llmbase
from bench._ingest_common import record


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(n: int = 1_000_000) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="llmbase-bench-mem-") as tmp:
        down = f"postgresql://postgres@/llmbase?host={tmp}/no-server-here"
        client = llmbase.connect(
            down, migrate=False, ingest_spool_dir=Path(tmp) / "spool", ingest_spool_max_bytes=8 << 30
        )
        req = client.requests
        rng = random.Random(5)
        templates = [record(rng, i) for i in range(1000)]
        req.log(model="warm-up")
        time.sleep(0.5)
        base = _rss_mb()
        peak = [base]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mb())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.perf_counter()
        for i in range(n):
            req.log(**templates[i % 1000])
        logged = time.perf_counter() - t0
        while True:  # every record spooled (or counted as dropped)
            st = req.stats()
            if st["spooled"] + st["dropped"] >= st["enqueued"] or time.perf_counter() - t0 > 600:
                break
            time.sleep(0.05)
        drained = time.perf_counter() - t0
        done.set()
        sampler.join()
        st = req.stats()
        end = _rss_mb()
        client.close()
        spool_mb = sum(p.stat().st_size for p in (Path(tmp) / "spool").glob("*.seg")) / 2**20
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        {
            "measure": "records logged (database stopped)",
            "value": f"{n:,}",
            "note": f"log() loop {logged:.1f} s",
        },
        {"measure": "RSS before", "value": f"{base:.0f} MB", "note": ""},
        {
            "measure": "RSS peak while logging",
            "value": f"{peak[0]:.0f} MB",
            "note": f"+{peak[0] - base:.0f} MB (process max RSS {max_rss:.0f} MB)",
        },
        {"measure": "RSS once spooled", "value": f"{end:.0f} MB", "note": f"+{end - base:.0f} MB"},
        {
            "measure": "spooled to disk",
            "value": f"{st['spooled']:,} records",
            "note": f"{spool_mb:,.0f} MB in {drained:.1f} s; dropped {st['dropped']}",
        },
    ]
