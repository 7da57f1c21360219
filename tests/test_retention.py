"""Retention: old partitions leave the hot table whole (archived or dropped) while the
rollup-based reports keep their figures; dropping bodies keeps every metric column."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors as pgerr
from typer.testing import CliRunner

import llmbase
from llmbase import retention
from llmbase.cli import app
from llmbase.db import DEFAULT_TENANT
from llmbase.errors import ConflictError
from llmbase.rollups import rebuild_rollups
from test_reports import NOW, TODAY, copy_requests, make_rows

START = TODAY - timedelta(days=10)
CUTOFF = TODAY - timedelta(days=5)


@pytest.fixture
def rows(client: llmbase.LLMBase, db_url: str) -> list[dict[str, Any]]:
    users = [client.users.create(x).id for x in ("alice", "bob")] + [None]
    data = make_rows(random.Random(11), DEFAULT_TENANT, users, 2000, START, NOW)
    copy_requests(db_url, data)
    rebuild_rollups(db_url, START, NOW)
    return data


def reports(client: llmbase.LLMBase) -> dict[str, Any]:
    r = client.reports
    return {
        "daily": r.daily(),
        "monthly": r.monthly(),
        "cost_by_user": r.cost_by_user(),
        "errors": r.error_rate(),
        "latency": r.latency(),
        "window": r.latency(since=START + timedelta(hours=5), until=CUTOFF + timedelta(hours=30)),
        "alice": r.user_usage("alice"),
    }


def scalar(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]


def test_archive_moves_whole_old_partitions_and_reports_stay(
    client: llmbase.LLMBase, db_url: str, rows: list[dict[str, Any]]
) -> None:
    before = reports(client)
    old = [r for r in rows if r["created_at"] < CUTOFF]
    assert old
    plan = retention.archive_requests(db_url, CUTOFF, dry_run=True)
    assert [p.name for p in plan.partitions] == [
        f"requests_p{(START + timedelta(days=d)):%Y%m%d}" for d in range(5)
    ]
    assert scalar(db_url, "SELECT count(*) FROM llmbase.requests WHERE created_at < %s", CUTOFF) == len(old)
    seen: list[tuple[int, int]] = []
    res = retention.archive_requests(db_url, CUTOFF, progress=lambda d, t, _: seen.append((d, t)))
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    assert sorted(res.moved_to.values()) == [f"llmbase_archive.{p.name}" for p in plan.partitions]
    # raw rows older than the cutoff are gone from the hot table, the rest is intact
    assert scalar(db_url, "SELECT count(*) FROM llmbase.requests WHERE created_at < %s", CUTOFF) == 0
    assert scalar(db_url, "SELECT count(*) FROM llmbase.requests") == len(rows) - len(old)
    archived = sum(scalar(db_url, f"SELECT count(*) FROM {t}") for t in res.moved_to.values())
    assert archived == len(old)
    # every rollup-based report gives the same figures as before
    assert reports(client) == before
    # raw-row reports only see the hot table now
    assert all(s.created_at >= CUTOFF for s in client.reports.slowest(limit=50))
    # nothing left to do; the application role cannot read the archive
    assert retention.archive_requests(db_url, CUTOFF).partitions == []
    with psycopg.connect(db_url) as conn:
        conn.execute("SET ROLE llmbase_app")
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute(f"SELECT count(*) FROM {res.moved_to[plan.partitions[0].name]}")


def test_archive_drop_and_name_collisions(
    client: llmbase.LLMBase, db_url: str, rows: list[dict[str, Any]]
) -> None:
    first = f"requests_p{START:%Y%m%d}"
    res = retention.archive_requests(db_url, START + timedelta(days=1))
    assert res.moved_to == {first: f"llmbase_archive.{first}"}
    # a late record re-creates the day's partition; archiving it again keeps both tables
    late = make_rows(random.Random(1), DEFAULT_TENANT, [None], 3, START, START + timedelta(hours=1))
    copy_requests(db_url, late)
    again = retention.archive_requests(db_url, START + timedelta(days=1))
    assert again.moved_to == {first: f"llmbase_archive.{first}_2"}
    assert scalar(db_url, f"SELECT count(*) FROM llmbase_archive.{first}_2") == 3
    dropped = retention.archive_requests(db_url, START + timedelta(days=3), drop=True)
    assert [p.name for p in dropped.partitions] == [
        f"requests_p{START + timedelta(days=d):%Y%m%d}" for d in (1, 2)
    ]
    assert dropped.moved_to == {}
    for p in dropped.partitions:
        assert scalar(db_url, "SELECT to_regclass(%s)::text", f"llmbase.{p.name}") is None
        assert scalar(db_url, "SELECT to_regclass(%s)::text", f"llmbase_archive.{p.name}") is None
    remaining = [r for r in rows if r["created_at"] >= START + timedelta(days=3)]
    assert scalar(db_url, "SELECT count(*) FROM llmbase.requests") == len(remaining)


METRICS = (
    "tenant_id, created_at, id, request_type, provider, model, user_id, conversation_id, message_id,"
    " run_id, iteration, status, error_kind, error_message, http_status, tokens_prompt,"
    " tokens_completion, tokens_total, tokens_cached, tokens_reasoning, cost_usd, cost_source,"
    " cost_unknown, latency_ms, ttft_ms, stream, cache_hit, cost_saved_usd, audio_duration_s,"
    " audio_format, audio_bytes, bodies_truncated, tags, metadata"
)


def snapshot(url: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        got = conn.execute(f"SELECT {METRICS}, request_body, response_body FROM llmbase.requests").fetchall()
    return {r[2]: r for r in got}


def test_drop_bodies_keeps_every_metric(
    client: llmbase.LLMBase, db_url: str, rows: list[dict[str, Any]]
) -> None:
    cutoff = TODAY - timedelta(days=2, hours=-6)  # mid-partition: that day is cut at 06:00
    with psycopg.connect(db_url) as conn:
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'llmbase.requests'::regclass"
                " AND attnum > 0 AND NOT attisdropped"
            ).fetchall()
        }
    assert cols == {c.strip() for c in METRICS.split(",")} | {"request_body", "response_body"}
    before = snapshot(db_url)
    reports_before = reports(client)
    older = {r["id"] for r in rows if r["created_at"] < cutoff}
    plan = retention.drop_bodies(db_url, cutoff, dry_run=True)
    assert sum(plan.rows_with_bodies.values()) == len(older)
    assert snapshot(db_url) == before
    seen: list[int] = []
    res = retention.drop_bodies(db_url, cutoff, batch_size=37, progress=lambda d, t, _: seen.append(d))
    assert res.cleared == len(older)
    assert seen == sorted(seen) and seen[-1] == len(older)
    after = snapshot(db_url)
    assert after.keys() == before.keys()
    n = len(METRICS.split(","))
    for ident, row in after.items():
        assert row[:n] == before[ident][:n]  # every metric column unchanged
        if ident in older:
            assert row[n:] == (None, None)
        else:
            assert row[n:] == before[ident][n:] and row[n] is not None
    assert reports(client) == reports_before
    assert retention.drop_bodies(db_url, cutoff).cleared == 0


runner = CliRunner()


def cli(db_url: str, *args: str) -> Any:
    return runner.invoke(app, ["archive", *args, "--database-url", db_url], catch_exceptions=False)


def test_cli_archive(client: llmbase.LLMBase, db_url: str, rows: list[dict[str, Any]]) -> None:
    days = (NOW - CUTOFF).days
    r = cli(db_url, "--older-than", f"{days}d", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    planned = json.loads(r.output)["partitions"]
    assert planned["dry_run"] and len(planned["partitions"]) >= 4
    assert scalar(db_url, "SELECT count(*) FROM llmbase.requests") == len(rows)
    r = cli(db_url, "--drop-bodies-after", "3d", "--dry-run")
    assert r.exit_code == 0 and "would clear bodies of" in r.output
    r = runner.invoke(
        app,
        [
            "archive",
            "requests",
            "--older-than",
            f"{days}d",
            "--drop-bodies-after",
            "3d",
            "--database-url",
            db_url,
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "archived to llmbase_archive" in r.output and "cleared bodies of" in r.output
    day = TODAY - timedelta(days=days)  # the partition holding the cutoff stays
    assert scalar(db_url, "SELECT count(*) FROM llmbase.requests WHERE created_at < %s", day) == 0
    assert scalar(db_url, "SELECT count(*) FROM llmbase.requests") == len(
        [r for r in rows if r["created_at"] >= day]
    )
    assert (
        scalar(
            db_url,
            "SELECT count(*) FROM llmbase.requests WHERE created_at < %s AND request_body IS NOT NULL",
            NOW - timedelta(days=3, minutes=1),
        )
        == 0
    )
    r = cli(db_url, "--older-than", "1d", "--drop")
    assert r.exit_code != 0  # asks first; no input means abort
    assert cli(db_url, "--drop").exit_code == 1
    assert cli(db_url, "--older-than", "last week").exit_code == 1
    assert TODAY.tzinfo is UTC


def test_archive_gives_up_on_a_busy_table_without_queueing_forever(
    db_url: str, rows: list[dict[str, Any]]
) -> None:
    with psycopg.connect(db_url) as reader:
        reader.execute("SELECT count(*) FROM llmbase.requests")  # holds ACCESS SHARE until commit
        with pytest.raises(ConflictError):
            retention.archive_requests(db_url, CUTOFF, lock_timeout_ms=50, attempts=2)
        reader.rollback()
    res = retention.archive_requests(db_url, CUTOFF)
    assert len(res.moved_to) == 5
