"""Required: racing clients on one limit admit exactly the limit, over many trials
(threads with their own connections, and separate processes)."""

from __future__ import annotations

import multiprocessing as mp
import threading
from typing import Any

import psycopg
import pytest

import llmbase

THREADS = 16


def _race(client: llmbase.LLMBase, attempts_per_thread: int, **consume: Any) -> int:
    barrier = threading.Barrier(THREADS)
    admitted = [0] * THREADS
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(attempts_per_thread):
                if client.limits.consume(**consume).allowed:
                    admitted[i] += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return sum(admitted)


def test_racing_threads_admit_exactly_the_limit(db_url: str) -> None:
    client = llmbase.connect(db_url, migrate=False, pool_max_size=THREADS, pool_min_size=THREADS)
    try:
        client.admin().tenants.create("acme")
        acme = client.tenant("acme")
        for trial in range(12):
            limit = 7 + trial * 3
            user = acme.users.create(f"u{trial}")
            acme.limits.set(limit, user=user.id)
            # 16 threads x 4 attempts = 64 > every limit here
            assert _race(acme, 4, user=user.id) == limit, f"trial {trial}"
        # A hot tenant limit combined with a per-user one: both stay exact.
        acme.limits.set(25, metric="tokens")
        assert _race(acme, 3, requests=0, tokens=1) == 25
    finally:
        client.close()


def test_racing_multi_limit_calls_stay_exact(db_url: str, server_url: str) -> None:
    client = llmbase.connect(db_url, migrate=False, pool_max_size=THREADS, pool_min_size=THREADS)
    try:
        client.admin().tenants.create("acme")
        acme = client.tenant("acme")
        tenant_limit = acme.limits.set(30)
        acme.limits.set(1000, metric="tokens")
        admitted = _race(acme, 4, tokens=10)
        assert admitted == 30
        with psycopg.connect(db_url) as conn:
            used = dict(
                conn.execute(
                    "SELECT l.metric, c.used FROM llmbase.rate_limit_counters c"
                    " JOIN llmbase.rate_limits l ON l.id = c.limit_id"
                ).fetchall()
            )
        # what was admitted was counted on both limits; what was refused on neither
        assert used == {"requests": 30, "tokens": 300}
        assert tenant_limit.limit == 30
    finally:
        client.close()


def _process_worker(url: str, tenant: str, user: str, attempts: int, start: Any, out: Any) -> None:
    client = llmbase.connect(url, migrate=False)
    try:
        scoped = client.tenant(tenant)
        start.wait()
        n = sum(1 for _ in range(attempts) if scoped.limits.consume(user=user).allowed)
        out.put(n)
    finally:
        client.close()


@pytest.mark.slow  # process start-up dominates; the thread race above is the default-suite check
def test_racing_processes_admit_exactly_the_limit(db_url: str) -> None:
    client = llmbase.connect(db_url, migrate=False)
    try:
        t = client.admin().tenants.create("acme")
        acme = client.tenant(t.id)
        ctx = mp.get_context("spawn")
        procs_n = 4
        for trial in range(3):
            user = acme.users.create(f"p{trial}")
            acme.limits.set(23, user=user.id)
            start = ctx.Event()
            out = ctx.Queue()
            procs = [
                ctx.Process(target=_process_worker, args=(db_url, str(t.id), str(user.id), 15, start, out))
                for _ in range(procs_n)
            ]
            for p in procs:
                p.start()
            start.set()
            total = sum(out.get(timeout=60) for _ in procs)
            for p in procs:
                p.join(30)
                assert p.exitcode == 0
            assert total == 23, f"trial {trial}"
    finally:
        client.close()
