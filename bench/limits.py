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

import random
import threading
import time
import uuid
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


def _race(work: Callable[[int, int], bool]) -> tuple[float, list[int], int]:
    """Run `work(client, i)` CALLS_PER_CLIENT times in each of CLIENTS threads at once."""
    barrier = threading.Barrier(CLIENTS + 1)
    samples: list[list[int]] = [[] for _ in range(CLIENTS)]
    admitted = [0] * CLIENTS
    errors: list[BaseException] = []

    def worker(c: int) -> None:
        pc = time.perf_counter_ns
        out = samples[c]
        n = 0
        try:
            barrier.wait()
            for i in range(CALLS_PER_CLIENT):
                t0 = pc()
                ok = work(c, i)
                out.append(pc() - t0)
                n += ok
        except BaseException as exc:
            errors.append(exc)
        admitted[c] = n

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    flat = sorted(x for s in samples for x in s)
    return elapsed, flat, sum(admitted)


def _row(
    scenario: str, keys: int | str, elapsed: float, lat: list[int], admitted: int | str, expected: int | str
) -> dict[str, object]:
    rate = len(lat) / elapsed
    p99 = _pct(lat, 0.99)
    exact = (
        "n/a" if expected == "n/a" else ("yes" if admitted == expected else f"NO ({admitted} vs {expected})")
    )
    goal = "n/a"
    if scenario.startswith("llmbase"):
        met = rate >= 5000 and p99 <= 5.0 and exact == "yes"
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


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    total = CLIENTS * CALLS_PER_CLIENT
    with server() as (url, _tmp):
        client = llmbase.connect(url, migrate=False, pool_min_size=CLIENTS, pool_max_size=CLIENTS)
        try:
            # -- the limit: a bare round trip per call, one connection per client ------------
            conns = [psycopg.connect(url, autocommit=True) for _ in range(CLIENTS)]
            try:
                elapsed, lat, _ = _race(lambda c, i: conns[c].execute("SELECT 1").fetchone() is not None)
                rows.append(_row("limit: SELECT 1 round trip", "-", elapsed, lat, "n/a", "n/a"))

                # -- seed 003's way --------------------------------------------------------------
                with psycopg.connect(url, autocommit=True) as admin:
                    admin.execute(_SEED_SCHEMA)
                    admin.execute(
                        "INSERT INTO seed003.rate_limits (user_id, max_requests)"
                        " SELECT 'u' || g, %s FROM generate_series(0, %s) g",
                        (PER_KEY, KEYS - 1),
                    )
                    admin.execute(
                        "INSERT INTO seed003.rate_limits (user_id, max_requests) VALUES ('hot', %s)",
                        (total // 2,),
                    )

                def seed_way(conn: psycopg.Connection[Any], user: str) -> bool:
                    conn.execute("SELECT seed003.reset_rate_limit_if_expired(%s)", (user,))
                    row = conn.execute(
                        "SELECT request_count, max_requests FROM seed003.rate_limits WHERE user_id = %s",
                        (user,),
                    ).fetchone()
                    if row is None or row[0] >= row[1]:
                        return False
                    conn.execute(
                        "UPDATE seed003.rate_limits SET request_count = request_count + 1 WHERE user_id = %s",
                        (user,),
                    )
                    return True

                plan = _plan_keys(2)
                expected_keys = sum(min(n, PER_KEY) for n in Counter(k for p in plan for k in p).values())
                elapsed, lat, admitted = _race(lambda c, i: seed_way(conns[c], f"u{plan[c][i]}"))
                rows.append(_row("seed 003: read-then-update", KEYS, elapsed, lat, admitted, expected_keys))
                elapsed, lat, admitted = _race(lambda c, i: seed_way(conns[c], "hot"))
                rows.append(_row("seed 003: read-then-update", 1, elapsed, lat, admitted, total // 2))
            finally:
                for conn in conns:
                    conn.close()

            # -- llmbase ---------------------------------------------------------------------
            tenant = client.admin().tenants.create("bench")
            acme = client.tenant(tenant.id)
            acme.limits.set(PER_KEY, window="day", per_user=True)
            users = [uuid.UUID(int=k + 1) for k in range(KEYS)]
            scoped = [acme.user(u).limits for u in users]
            scoped[0].consume()  # warm-up (counted: expected below accounts for it)
            plan = _plan_keys(1)
            counts = Counter(k for p in plan for k in p)
            counts[0] += 1
            expected_keys = sum(min(n, PER_KEY) for n in counts.values()) - 1
            elapsed, lat, admitted = _race(lambda c, i: scoped[plan[c][i]].consume().allowed)
            rows.append(
                _row("llmbase consume(), per-user limit", KEYS, elapsed, lat, admitted, expected_keys)
            )

            hot = client.admin().tenants.create("hot")
            hot_limits = client.tenant(hot.id).limits
            hot_limits.set(total // 2, window="day")
            elapsed, lat, admitted = _race(lambda c, i: hot_limits.consume().allowed)
            rows.append(_row("llmbase consume(), one hot key", 1, elapsed, lat, admitted, total // 2))
        finally:
            client.close()
    return rows


if __name__ == "__main__":
    from bench.run import table

    print(table(run()))
