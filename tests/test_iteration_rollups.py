"""llmbase.run_iteration_rollups stays equal to a GROUP BY over llmbase.run_iterations for
every write path: the writer's MERGE (new rows and replays that change a row), plain SQL
inserts and updates, and deletes cascaded from a run. The SQL histogram bucket is the
Python one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmbase
from llmbase import histogram
from llmbase.db import DEFAULT_TENANT
from llmbase.ingest.api import enqueue

_ROLLUPS = """
SELECT grain, bucket_start, iteration, iterations, api_ms_sum, tool_ms_sum, total_count,
       total_ms_sum, api_hist
  FROM llmbase.run_iteration_rollups WHERE iterations <> 0
 ORDER BY 1, 2, 3"""

_FROM_RAW = """
SELECT g.grain, date_trunc(g.grain, i.started_at, 'UTC') AS bucket_start, i.iteration,
       count(*), sum(i.api_ms), sum(i.tool_ms), count(i.total_ms), coalesce(sum(i.total_ms), 0),
       array_agg(i.api_ms)
  FROM llmbase.run_iterations i CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain)
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3"""


def _trim(h: list[int]) -> list[int]:
    while h and h[-1] == 0:
        h = h[:-1]
    return h


def _same(conn: psycopg.Connection[Any]) -> None:
    got = conn.execute(_ROLLUPS).fetchall()
    exp = conn.execute(_FROM_RAW).fetchall()
    assert [r[:4] for r in got] == [r[:4] for r in exp]
    for g, e in zip(got, exp, strict=True):
        for a, b in zip(g[4:8], e[4:8], strict=True):
            assert abs(a - b) <= 1e-6 * max(1.0, abs(b))
        assert _trim(list(g[8])) == histogram.from_values(e[8])


def _admin(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
    return conn


def test_writer_merge_replays_updates_and_cascaded_deletes(client: llmbase.LLMBase, db_url: str) -> None:
    with client.run("answer") as run:
        for _ in range(3):
            with run.iteration():
                run.tool("search").__enter__().__exit__(None, None, None)
    with client.run("answer") as run2, run2.iteration():
        pass
    assert client.requests.flush(30)
    with _admin(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM llmbase.run_iterations").fetchone() == (4,)
        _same(conn)
        # A replay through the writer that changes a row (the MERGE's update branch).
        started = datetime.now(UTC) - timedelta(days=2)
        enqueue(
            client,
            "iteration",
            {"run_id": run.id, "iteration": 2, "started_at": started, "api_ms": 1234.5, "total_ms": 1300.0},
        )
        assert client.requests.flush(30)
        assert conn.execute(
            "SELECT api_ms FROM llmbase.run_iterations WHERE run_id = %s AND iteration = 2", (run.id,)
        ).fetchone() == (1234.5,)
        _same(conn)
        # Plain SQL: a multi-row insert and an update of several rows.
        rid = uuid.uuid4()
        conn.execute(
            "INSERT INTO llmbase.runs (tenant_id, id, name, started_at) VALUES (%s, %s, 'sql', now())",
            (DEFAULT_TENANT, rid),
        )
        conn.execute(
            "INSERT INTO llmbase.run_iterations (tenant_id, run_id, iteration, started_at, api_ms, tool_ms, total_ms)"
            " SELECT %s, %s, i, now() - i * interval '1 hour', 100 * i, 5, NULL FROM generate_series(1, 6) i",
            (DEFAULT_TENANT, rid),
        )
        _same(conn)
        conn.execute(
            "UPDATE llmbase.run_iterations SET api_ms = api_ms * 3, total_ms = 1 WHERE run_id = %s", (rid,)
        )
        _same(conn)
        # Deleting a run cascades to its iterations; their rollups go with them.
        conn.execute("DELETE FROM llmbase.runs WHERE id = %s", (rid,))
        _same(conn)
        conn.execute("DELETE FROM llmbase.runs")
        assert conn.execute("SELECT count(*) FROM llmbase.run_iteration_rollups").fetchone() == (0,)


# db_url is read only here: one database for every example is fine.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=30))
def test_sql_histogram_is_the_python_one(db_url: str, values: list[float]) -> None:
    with psycopg.connect(db_url) as conn:
        got = conn.execute("SELECT llmbase.hist_of(%s::float8[])", (values,)).fetchone()
        assert got is not None
        assert list(got[0]) == histogram.from_values(values)
