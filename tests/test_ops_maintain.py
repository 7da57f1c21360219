"""`llmbase maintain`: plans what needs care, says why, does it (or only reports it)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase import ops
from llmbase.db import DEFAULT_TENANT
from llmbase.errors import ValidationError

Conn = psycopg.Connection[Any]


@pytest.fixture
def su(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def tasks(res: ops.MaintainResult) -> dict[str, list[ops.Action]]:
    out: dict[str, list[ops.Action]] = {}
    for a in res.actions:
        out.setdefault(a.task, []).append(a)
    return out


def test_partitions_ahead_and_a_second_run_has_nothing_to_do(db_url: str, su: Conn) -> None:
    today = datetime.now(UTC).date()
    plan = ops.maintain(db_url, dry_run=True, thresholds=ops.Thresholds(days_ahead=20))
    assert "partitions" in tasks(plan)
    assert su.execute(
        "SELECT to_regclass(%s)", (f"llmbase.requests_p{today + timedelta(days=20):%Y%m%d}",)
    ).fetchone() == (None,)
    done = ops.maintain(db_url, thresholds=ops.Thresholds(days_ahead=20))
    part = tasks(done)["partitions"][0]
    assert part.done and part.result["created"] >= 10
    for d in range(-1, 21):
        name = f"llmbase.requests_p{today + timedelta(days=d):%Y%m%d}"
        assert su.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)
    again = ops.maintain(db_url, dry_run=True, thresholds=ops.Thresholds(days_ahead=20))
    assert "partitions" not in tasks(again)


def test_expired_cache_entries_and_limit_leftovers_are_cleaned(
    client: llmbase.LLMBase, db_url: str, su: Conn
) -> None:
    for i, expiry in enumerate(["-1 hour", "-1 day", "+1 day"]):
        su.execute(
            "INSERT INTO llmbase.cache_entries (tenant_id, key_hash, params_hash, response, expires_at)"
            " VALUES (%s, sha256(%s::bytea), sha256('p'::bytea), '{}', now() + %s::interval)",
            (DEFAULT_TENANT, str(i).encode(), expiry),
        )
    limit = su.execute(
        "INSERT INTO llmbase.rate_limits (tenant_id, subject, metric, period, limit_value)"
        " VALUES (%s, 'tenant', 'requests', 'minute', 10) RETURNING id",
        (DEFAULT_TENANT,),
    ).fetchone()
    assert limit is not None
    for ago in (3, 2):
        su.execute(
            "INSERT INTO llmbase.rate_limit_counters (tenant_id, limit_id, subject_key, window_start,"
            " window_end, used) VALUES (%s, %s, %s, now() - make_interval(mins => %s),"
            " now() - make_interval(mins => %s - 1), 5)",
            (DEFAULT_TENANT, limit[0], uuid.UUID(int=0), ago, ago),
        )
    plan = ops.maintain(db_url, dry_run=True)
    t = tasks(plan)
    assert t["cache"][0].reason == "2 expired entries"
    assert t["limits"][0].reason.startswith("2 counters of ended windows")
    res = ops.maintain(db_url, thresholds=ops.Thresholds(cache_batch=1))
    t = tasks(res)
    assert t["cache"][0].result == {"deleted": 2}
    assert t["limits"][0].result["counters_deleted"] == 2
    assert su.execute("SELECT count(*) FROM llmbase.cache_entries").fetchone() == (1,)
    assert su.execute("SELECT count(*) FROM llmbase.rate_limit_counters").fetchone() == (0,)


def test_vacuum_and_analyze_where_the_thresholds_say(client: llmbase.LLMBase, db_url: str, su: Conn) -> None:
    convs = [client.conversations.create(title=str(i)).id for i in range(20)]
    su.execute("ANALYZE llmbase.conversations")
    for c in convs[:10]:
        su.execute("UPDATE llmbase.conversations SET title = 'changed' WHERE id = %s", (c,))
    su.execute("SELECT pg_stat_force_next_flush()")
    # Default thresholds: 10 dead rows are not worth a VACUUM.
    plan = ops.maintain(db_url, dry_run=True)
    assert not any(a.target == "llmbase.conversations" for a in plan.actions if a.task == "vacuum")
    low = ops.Thresholds(min_dead=5, dead_ratio=0.2, min_modified=5)
    plan = ops.maintain(db_url, dry_run=True, thresholds=low)
    vac = [a for a in plan.actions if a.task == "vacuum" and a.target == "llmbase.conversations"]
    assert len(vac) == 1 and vac[0].reason.startswith("10 dead rows") and not vac[0].done
    res = ops.maintain(db_url, thresholds=low)
    vac = [a for a in res.actions if a.task == "vacuum" and a.target == "llmbase.conversations"]
    assert vac[0].done
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
    row = su.execute(
        "SELECT n_dead_tup, last_vacuum IS NOT NULL FROM pg_stat_user_tables"
        " WHERE relid = 'llmbase.conversations'::regclass"
    ).fetchone()
    assert row == (0, True)


def test_a_parent_never_analyzed_is_reported_and_analyzed(db_url: str, su: Conn) -> None:
    for _ in range(5):
        su.execute(
            "INSERT INTO llmbase.requests (tenant_id, created_at, id, request_type) VALUES (%s, now(), %s, 'chat')",
            (DEFAULT_TENANT, uuid.uuid4()),
        )
    su.execute("SELECT pg_stat_force_next_flush()")
    plan = ops.maintain(db_url, dry_run=True)
    found = [a for a in plan.actions if a.task == "analyze" and a.target == "llmbase.requests"]
    assert found and "never analyzed" in found[0].reason
    ops.maintain(db_url)
    assert su.execute(
        "SELECT count(*) > 0 FROM pg_statistic WHERE starelid = 'llmbase.requests'::regclass"
    ).fetchone() == (True,)
    plan = ops.maintain(db_url, dry_run=True)
    assert not any(a.target == "llmbase.requests" for a in plan.actions)


def test_missing_hooks_are_reported_as_skipped(db_url: str, su: Conn) -> None:
    su.execute("DROP FUNCTION llmbase.clean_expired_cache(integer)")
    res = ops.maintain(db_url)
    skipped = [a for a in res.skipped if a.target == "llmbase.clean_expired_cache"]
    assert len(skipped) == 1 and "does not exist" in skipped[0].reason and not skipped[0].done


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("dead_ratio", -0.1),
        ("dead_ratio", 1.5),
        ("dead_ratio", math.nan),
        ("analyze_ratio", "0.1"),
        ("min_dead", -1),
        ("min_modified", 1.5),
        ("days_ahead", 1000),
        ("days_ahead", True),
        ("orphan_days", -3),
        ("cache_batch", 0),
        ("parent_analyze_hours", math.nan),
    ],
)
def test_bad_thresholds_are_rejected(db_url: str, su: Conn, name: str, value: Any) -> None:
    count = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'llmbase.requests'::regclass"
    before = su.execute(count).fetchone()
    with pytest.raises(ValidationError) as e:
        ops.maintain(db_url, thresholds=ops.Thresholds(**{name: value}))
    assert e.value.field == name
    assert su.execute(count).fetchone() == before
