"""Benchmark: embedded server start (cold: initdb; warm: existing data dir; join: already
running) and migration of an empty database to head, against the hand-written way (psql -f
of every seed-style SQL file is what users do today; here: the same SQL via `migrate sql`)."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from llmbase import migrate
from llmbase.db import url_with_database
from llmbase.embedded import EmbeddedServer


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def run(repeats: int = 5) -> list[dict[str, object]]:
    cold, warm, join, mig, psql = [], [], [], [], []
    script = migrate.sql_script()
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "pg"
            s = EmbeddedServer(data)
            cold.append(_timed(s.start))
            joiner = EmbeddedServer(data)
            join.append(_timed(joiner.start))
            s.release()
            joiner.release()
            while s.is_running():
                time.sleep(0.05)
            s2 = EmbeddedServer(data)
            warm.append(_timed(s2.start))
            url = s2.url
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE m1")
                conn.execute("CREATE DATABASE m2")
            u1, u2 = url_with_database(url, "m1"), url_with_database(url, "m2")
            mig.append(_timed(lambda u=u1: migrate.upgrade(u)))
            psql_bin = str(s2.bin_dir / "psql")
            psql.append(
                _timed(
                    lambda exe=psql_bin, u=u2: subprocess.run(
                        [exe, "-q", "-v", "ON_ERROR_STOP=1", u],
                        input=script,
                        text=True,
                        check=True,
                        capture_output=True,
                    )
                )
            )
            s2.release()

    def row(name: str, xs: list[float], note: str) -> dict[str, object]:
        return {
            "measure": name,
            "median_s": round(statistics.median(xs), 3),
            "max_s": round(max(xs), 3),
            "n": len(xs),
            "note": note,
        }

    return [
        row("cold start (initdb + start + create db)", cold, "first `llmbase up` on a machine"),
        row("warm start (existing data dir)", warm, "every later start"),
        row("join (server already running)", join, "a second process"),
        row("migrate empty -> head (llmbase, Alembic)", mig, "one transaction per revision, advisory lock"),
        row("same SQL via psql -f (hand-written way)", psql, "the seeds' `psql -f` baseline"),
    ]
