"""Benchmark: rate-limit checks (`client.limits.consume()`) under 16 concurrent clients.

Scenarios, each with 16 client threads holding their own connection (the SDK's pool sized
16), every client running a fixed number of calls back to back, each call timed:

- limit: a bare `SELECT 1` round trip per call: what the hardware and PostgreSQL allow
  with these clients at best.
- llmbase, 10,000 keys: a per-user limit (each user 3 per day), every call for a random
  user out of 10,000; admitted must equal sum(min(calls of a user, 3)) exactly.
- llmbase, one hot key: one tenant-wide limit that admits half of all calls; admitted
  must equal the limit exactly.
- seed 003's way: its `rate_limits` row per user and `reset_rate_limit_if_expired()`,
  then the app reads `request_count` and, when below the maximum, increments it (three
  statements, as a supabase-py client issues them): the same hot key and the same
  10,000 keys, to show what read-then-update admits under concurrency.

Goal (issue 5): >= 5,000 checks/s and p99 <= 5 ms, exact admission counts.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg

import llmbase
from bench._ingest_common import server

CLIENTS = 16
KEYS = 10_000
CALLS_PER_CLIENT = 2_000
PER_KEY = 3
GOAL_RATE = 5_000.0
#: "threads" (default: 16 threads of one process, each with its own connection; they share
#: the GIL) or "processes" (16 forked client processes, each with its own connection).
#: On a 2-core machine threads measured faster: waking 16 processes costs more than the GIL.
MODE = os.environ.get("LLMBASE_BENCH_CLIENTS", "threads")

_SEED_SCHEMA = """
CREATE SCHEMA seed003;
CREATE TABLE seed003.rate_limits (
    user_id         text PRIMARY KEY,
    request_count   integer NOT NULL DEFAULT 0,
    window_start    timestamptz NOT NULL DEFAULT now(),
    window_duration interval NOT NULL DEFAULT interval '1 day',
    max_requests    integer NOT NULL
);
CREATE FUNCTION seed003.reset_rate_limit_if_expired(p_user_id text) RETURNS void
LANGUAGE sql AS $$
    UPDATE seed003.rate_limits SET request_count = 0, window_start = now()
     WHERE user_id = p_user_id AND window_start + window_duration < now()
$$;
"""


def _pct(xs: list[int], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1e6


#: Offered load of the paced runs (checks/s over all clients); empty: closed loop.
_PACE: list[float] = []


def _turn(start: int, c: int, i: int) -> int:
    """Paced runs: wait for call i of client c's slot and return the slot's time, so a late
    call counts its wait (no coordinated omission)."""
    gap = CLIENTS * 1e9 / _PACE[0]
    due = start + int((i + c / CLIENTS) * gap)
    now = time.perf_counter_ns()
    if due > now:
        time.sleep((due - now) / 1e9)
    return due


def _race(setup: Callable[[int], Callable[[int], bool]]) -> tuple[float, list[int], int]:
    """Run `work(i)` CALLS_PER_CLIENT times in each of CLIENTS clients at once (`work =
    setup(client)`, called in the client: its own connections). Clients are processes
    (MODE "processes") or threads of this process (MODE "threads")."""
    if MODE == "threads":
        return _race_threads(setup)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(CLIENTS + 1)
    out = ctx.SimpleQueue()

    def client(c: int) -> None:
        try:
            work = setup(c)
            samples = array("q")
            pc = time.perf_counter_ns
            n = 0
            barrier.wait()
            start = pc()
            for i in range(CALLS_PER_CLIENT):
                t0 = _turn(start, c, i) if _PACE else pc()
                ok = work(i)
                samples.append(pc() - t0)
                n += ok
            out.put((start, pc(), samples.tobytes(), n, None))
        except BaseException as exc:  # reported by the parent
            out.put((0, 0, b"", 0, repr(exc)))
            with contextlib.suppress(Exception):
                barrier.abort()

    procs = [ctx.Process(target=client, args=(c,)) for c in range(CLIENTS)]
    for p in procs:
        p.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=120)
    got = [out.get() for _ in procs]
    for p in procs:
        p.join()
    errors = [g[4] for g in got if g[4]]
    if errors:
        raise RuntimeError(f"client failed: {errors[0]}")
    elapsed = (max(g[1] for g in got) - min(g[0] for g in got)) / 1e9
    lat: list[int] = []
    for g in got:
        a = array("q")
        a.frombytes(g[2])
        lat.extend(a)
    lat.sort()
    return elapsed, lat, sum(g[3] for g in got)


def _race_threads(setup: Callable[[int], Callable[[int], bool]]) -> tuple[float, list[int], int]:
    works = [setup(c) for c in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS + 1)
    got: list[tuple[int, int, list[int], int]] = []
    errors: list[BaseException] = []

    def client(c: int) -> None:
        work = works[c]
        samples: list[int] = []
        pc = time.perf_counter_ns
        n = 0
        try:
            barrier.wait()
            start = pc()
            for i in range(CALLS_PER_CLIENT):
                t0 = _turn(start, c, i) if _PACE else pc()
                ok = work(i)
                samples.append(pc() - t0)
                n += ok
            got.append((start, pc(), samples, n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    elapsed = (max(g[1] for g in got) - min(g[0] for g in got)) / 1e9
    lat = sorted(x for g in got for x in g[2])
    return elapsed, lat, sum(g[3] for g in got)


def _row(
    scenario: str,
    keys: int | str,
    elapsed: float,
    lat: list[int],
    admitted: int | str,
    expected: int | str,
    offered: float | None = None,
) -> dict[str, object]:
    rate = len(lat) / elapsed
    p99 = _pct(lat, 0.99)
    exact = (
        "n/a" if expected == "n/a" else ("yes" if admitted == expected else f"NO ({admitted} vs {expected})")
    )
    goal = "n/a"
    if scenario.startswith("llmbase"):
        # paced: the offered rate must be kept up with (1% slack for the last slot's stagger)
        need = GOAL_RATE if offered is None else 0.99 * offered
        met = rate >= need and p99 <= 5.0 and exact == "yes"
        goal = "met" if met else "not met"
    return {
        "scenario": scenario,
        "clients": CLIENTS,
        "keys": keys,
        "calls": len(lat),
        "checks/s": f"{rate:,.0f}",
        "p50 ms": f"{_pct(lat, 0.50):.2f}",
        "p99 ms": f"{p99:.2f}",
        "admitted": admitted,
        "exact limit / expected": expected,
        "exact": exact,
        "goal >= 5,000/s, p99 <= 5 ms, exact": goal,
    }


def _plan_keys(seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(KEYS) for _ in range(CALLS_PER_CLIENT)] for _ in range(CLIENTS)]


def _seed_way(conn: psycopg.Connection[Any], user: str) -> bool:
    conn.execute("SELECT seed003.reset_rate_limit_if_expired(%s)", (user,))
    row = conn.execute(
        "SELECT request_count, max_requests FROM seed003.rate_limits WHERE user_id = %s", (user,)
    ).fetchone()
    if row is None or row[0] >= row[1]:
        return False
    conn.execute(
        "UPDATE seed003.rate_limits SET request_count = request_count + 1 WHERE user_id = %s", (user,)
    )
    return True


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    total = CLIENTS * CALLS_PER_CLIENT
    with server() as (url, _tmp):
        # -- the limit: a bare round trip per call, one connection per client ----------------
        def select_1(c: int) -> Callable[[int], bool]:
            conn = psycopg.connect(url, autocommit=True)
            conn.execute("SELECT 1")
            return lambda i: conn.execute("SELECT 1").fetchone() is not None

        elapsed, lat, _ = _race(select_1)
        rows.append(_row("limit: SELECT 1 round trip", "-", elapsed, lat, "n/a", "n/a"))

        # -- seed 003's way ------------------------------------------------------------------
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(_SEED_SCHEMA)
            admin.execute(
                "INSERT INTO seed003.rate_limits (user_id, max_requests)"
                " SELECT 'u' || g, %s FROM generate_series(0, %s) g",
                (PER_KEY, KEYS - 1),
            )
            admin.execute(
                "INSERT INTO seed003.rate_limits (user_id, max_requests) VALUES ('hot', %s)", (total // 2,)
            )

        def seed(keys: list[list[str]]) -> Callable[[int], Callable[[int], bool]]:
            def setup(c: int) -> Callable[[int], bool]:
                conn = psycopg.connect(url, autocommit=True)
                mine = keys[c]
                return lambda i: _seed_way(conn, mine[i])

            return setup

        plan = _plan_keys(2)
        expected_keys = sum(min(n, PER_KEY) for n in Counter(k for p in plan for k in p).values())
        elapsed, lat, admitted = _race(seed([[f"u{k}" for k in p] for p in plan]))
        rows.append(_row("seed 003: read-then-update", KEYS, elapsed, lat, admitted, expected_keys))
        elapsed, lat, admitted = _race(seed([["hot"] * CALLS_PER_CLIENT for _ in range(CLIENTS)]))
        rows.append(_row("seed 003: read-then-update", 1, elapsed, lat, admitted, total // 2))

        # -- llmbase -------------------------------------------------------------------------
        def sdk(tid: uuid.UUID, keys: list[list[int]] | None) -> Callable[[int], Callable[[int], bool]]:
            def setup(c: int) -> Callable[[int], bool]:
                # each client: its own llmbase client with one connection
                cl = llmbase.connect(url, migrate=False, pool_min_size=1, pool_max_size=1)
                scoped = cl.tenant(tid)
                scoped.limits.check()  # connect and prepare before the clock starts; counts nothing
                if keys is None:
                    lim = scoped.limits
                    return lambda i: lim.consume().allowed
                mine = [scoped.user(uuid.UUID(int=k + 1)).limits for k in keys[c]]
                return lambda i: mine[i].consume().allowed

            return setup

        plan = _plan_keys(1)
        expected_keys = sum(min(n, PER_KEY) for n in Counter(k for p in plan for k in p).values())
        for pace in (None, GOAL_RATE):
            _PACE[:] = [] if pace is None else [pace]
            at = "" if pace is None else f" at {pace:,.0f}/s offered"
            admin_client = llmbase.connect(url, migrate=False)
            try:
                tenant = admin_client.admin().tenants.create(f"bench{len(rows)}").id
                admin_client.tenant(tenant).limits.set(PER_KEY, window="day", per_user=True)
                hot = admin_client.admin().tenants.create(f"hot{len(rows)}").id
                admin_client.tenant(hot).limits.set(total // 2, window="day")
            finally:
                admin_client.close()
            if pace is not None:
                elapsed, lat, _ = _race(select_1)
                rows.append(_row(f"limit: SELECT 1 round trip{at}", "-", elapsed, lat, "n/a", "n/a", pace))
            elapsed, lat, admitted = _race(sdk(tenant, plan))
            rows.append(
                _row(
                    f"llmbase consume(), per-user limit{at}",
                    KEYS,
                    elapsed,
                    lat,
                    admitted,
                    expected_keys,
                    pace,
                )
            )
            elapsed, lat, admitted = _race(sdk(hot, None))
            rows.append(
                _row(f"llmbase consume(), one hot key{at}", 1, elapsed, lat, admitted, total // 2, pace)
            )
        _PACE[:] = []
    return rows


if __name__ == "__main__":
    from bench.run import table

    print(table(run()))
