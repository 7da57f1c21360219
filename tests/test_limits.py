"""Rate limits: definitions, check vs consume, subjects, all-or-none, bad input, maintenance."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase import NotFound, PermissionDenied, RateLimited, ValidationError
from llmbase.limits import limits_maintenance

ZERO = uuid.UUID(int=0)


@pytest.fixture
def acme(client: llmbase.LLMBase) -> llmbase.LLMBase:
    client.admin().tenants.create("acme")
    return client.tenant("acme")


def counters(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT limit_id, subject_key, used FROM llmbase.rate_limit_counters ORDER BY limit_id, subject_key"
        ).fetchall()


def test_consume_counts_until_the_limit_then_refuses(acme: llmbase.LLMBase) -> None:
    lim = acme.limits.set(3, window="minute")
    assert (lim.subject, lim.metric, lim.window, lim.limit, lim.per_user) == (
        "tenant",
        "requests",
        "minute",
        3,
        False,
    )
    got = [acme.limits.consume() for _ in range(5)]
    assert [r.allowed for r in got] == [True, True, True, False, False]
    assert [r.remaining for r in got] == [2, 1, 0, 0, 0]
    assert got[0].limit == 3 and got[0].name == "requests/minute" and got[0].retry_after == 0
    assert 0 < got[3].retry_after <= 60
    with pytest.raises(RateLimited) as exc:
        got[4].raise_for_limit()
    assert exc.value.limit == "requests/minute" and exc.value.limit_value == 3 and exc.value.remaining == 0
    assert 0 < exc.value.retry_after <= 60


def test_check_counts_nothing(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.limits.set(2)
    for _ in range(5):
        r = acme.limits.check()
        assert r.allowed and r.remaining == 1
    assert counters(db_url) == []
    acme.limits.consume(requests=2)
    r = acme.limits.check()
    assert not r.allowed and r.remaining == 0 and r.retry_after > 0
    assert [c[2] for c in counters(db_url)] == [2]


def test_no_limits_admits_everything(acme: llmbase.LLMBase) -> None:
    r = acme.limits.consume(requests=10**6)
    assert r.allowed and r.limit is None and r.remaining is None and r.limits == ()


def test_set_again_changes_the_value_in_place(acme: llmbase.LLMBase) -> None:
    a = acme.limits.set(5, metric="tokens", window="hour")
    b = acme.limits.set(7, metric="tokens", window="hour")
    assert a.id == b.id and b.limit == 7
    assert [x.limit for x in acme.limits.list()] == [7]
    assert acme.limits.get(a.id).limit == 7


def test_token_limit_counts_tokens_and_zero_amount_needs_room(acme: llmbase.LLMBase) -> None:
    acme.limits.set(100, metric="tokens", window="day")
    assert acme.limits.consume(tokens=60).remaining == 40
    r = acme.limits.consume(tokens=50)
    assert not r.allowed and r.remaining == 40
    assert acme.limits.consume(tokens=40).allowed
    # The window is used up: even a call that brings no token count is refused.
    assert not acme.limits.consume(requests=1, tokens=0).allowed
    assert not acme.limits.consume(tokens=101).allowed


def test_per_user_limit_gives_each_user_their_own_window(acme: llmbase.LLMBase) -> None:
    acme.limits.set(2, per_user=True)
    alice, bob = acme.user("alice"), acme.user("bob")
    assert [alice.limits.consume().allowed for _ in range(3)] == [True, True, False]
    assert [bob.limits.consume().allowed for _ in range(3)] == [True, True, False]
    # A tenant-wide backend may count for a user explicitly.
    carol = acme.users.create("carol")
    assert [acme.limits.consume(user=carol.id).allowed for _ in range(3)] == [True, True, False]
    assert [acme.limits.consume(user="carol").allowed for _ in range(1)] == [False]


def test_user_and_api_key_subjects(acme: llmbase.LLMBase) -> None:
    alice = acme.users.create("alice")
    key = acme.keys.create("k1").key
    acme.limits.set(1, user="alice")
    acme.limits.set(2, api_key=key.id)
    lims = {x.subject: x for x in acme.limits.list()}
    assert lims["user"].user_id == alice.id and lims["api_key"].api_key_id == key.id
    # alice's limit is hers alone
    assert acme.user("alice").limits.consume().allowed
    assert not acme.user("alice").limits.consume().allowed
    assert acme.user("bob").limits.consume().allowed
    # the key's limit applies to calls made with that key
    assert acme.limits.consume(api_key=key.id).allowed
    assert acme.limits.consume(api_key=str(key.id)).allowed
    assert not acme.limits.consume(api_key=key.id).allowed
    assert acme.limits.consume().allowed  # without the key


def test_multi_limit_is_all_or_none(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.limits.set(1, per_user=True)  # each user: 1 per minute
    tenant = acme.limits.set(10)  # tenant: 10 per minute
    alice = acme.user("alice")
    assert alice.limits.consume().allowed
    before = {c[0]: c[2] for c in counters(db_url) if c[1] == ZERO}
    assert before[tenant.id] == 1
    r = alice.limits.consume()
    assert not r.allowed
    by_id = {s.limit_id: s for s in r.limits}
    assert by_id[tenant.id].allowed and not next(s for s in r.limits if s.per_user).allowed
    # The tenant limit admitted on its own, but nothing of the refused call was counted.
    after = {c[0]: c[2] for c in counters(db_url) if c[1] == ZERO}
    assert after == before
    # tokens and requests refused together too
    acme.limits.set(5, metric="tokens")
    bob = acme.user("bob")
    assert not bob.limits.consume(tokens=6).allowed
    assert {c[0]: c[2] for c in counters(db_url) if c[1] == ZERO} == before


def test_user_scope_cannot_count_for_someone_else(acme: llmbase.LLMBase) -> None:
    acme.limits.set(1, per_user=True)
    bob = acme.users.create("bob")
    with pytest.raises(PermissionDenied):
        acme.user("alice").limits.consume(user=bob.id)
    assert acme.limits.consume(user=bob.id).allowed  # nothing was counted for bob


def test_definitions_need_tenant_wide_scope(acme: llmbase.LLMBase) -> None:
    lim = acme.limits.set(1)
    with pytest.raises(PermissionDenied):
        acme.user("alice").limits.set(5)
    with pytest.raises(PermissionDenied):
        acme.user("alice").limits.delete(lim.id)
    assert [x.id for x in acme.user("alice").limits.list()] == [lim.id]


def test_delete_removes_limit_and_counters(acme: llmbase.LLMBase, db_url: str) -> None:
    lim = acme.limits.set(1)
    acme.limits.consume()
    assert not acme.limits.consume().allowed
    acme.limits.delete(lim.id)
    assert counters(db_url) == []
    assert acme.limits.consume().allowed
    with pytest.raises(NotFound):
        acme.limits.delete(lim.id)
    with pytest.raises(NotFound):
        acme.limits.get(lim.id)


def test_deleting_a_user_or_tenant_removes_their_counters(
    client: llmbase.LLMBase, acme: llmbase.LLMBase, db_url: str
) -> None:
    # counters have no foreign key (it would lock the limit's row on every new window):
    # a trigger deletes them with their limit, also when the limit goes by cascade
    alice = acme.users.create("alice")
    own = acme.limits.set(5, user=alice.id)
    acme.limits.set(5, per_user=True)
    acme.user(alice.id).limits.consume()
    assert own.id in {c[0] for c in counters(db_url)}
    acme.users.delete(alice.id)
    assert own.id not in {c[0] for c in counters(db_url)}
    acme.user("bob").limits.consume()
    client.admin().tenants.delete(acme.scope().require_tenant())
    assert counters(db_url) == []


def test_lost_prepared_statements_are_prepared_again(acme: llmbase.LLMBase) -> None:
    # the hot path prepares its statements once per connection; a DEALLOCATE ALL (or
    # DISCARD ALL) on a pooled connection must not break it
    acme.limits.set(3)
    assert acme.limits.consume().allowed
    with acme._core.db.pool().connection() as conn:
        conn.execute("DEALLOCATE ALL")
    assert acme.limits.consume().remaining == 1
    assert acme.limits.check().remaining == 0


def test_statements_prepared_in_the_failing_batch_are_not_prepared_twice(db_url: str) -> None:
    # One pooled connection: consume prepares the scope and consume statements; a DEALLOCATE
    # ALL (psycopg sends one after a rollback) wipes them; the next call prepares a statement
    # of its own (budgets.check) while assuming the scope's: it must recover, not fail with
    # "prepared statement already exists".
    one = llmbase.connect(db_url, migrate=False, pool_min_size=1, pool_max_size=1)
    try:
        one.limits.set(5)
        one.budgets.set("10")
        assert one.limits.consume().allowed
        with one.database.pool().connection() as conn:
            conn.execute("DEALLOCATE ALL")
        assert one.budgets.check("1").allowed
        assert one.limits.consume().remaining == 3
        with one.database.pool().connection() as conn:
            conn.execute("DEALLOCATE ALL")
        assert one.limits.check().remaining == 2  # what would remain after one more call
        assert one.budgets.check("1").allowed
    finally:
        one.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": 10**16}, "limit"),
        ({"limit": float("nan")}, "limit"),
        ({"limit": 5, "window": "week"}, "window"),
        ({"limit": 5, "window": "minute\x00"}, "window"),
        ({"limit": 5, "window": None}, "window"),
        ({"limit": 5, "metric": "dollars"}, "metric"),
        ({"limit": 5, "per_user": "yes"}, "per_user"),
        ({"limit": 5, "api_key": "not-a-uuid"}, "api_key"),
        ({"limit": 5, "api_key": 42}, "api_key"),
        ({"limit": 5, "user": 42}, "user"),
        ({"limit": 5, "user": "a\x00b"}, "user"),
        ({"limit": 5, "user": "alice", "per_user": True}, "per_user"),
    ],
)
def test_set_rejects_bad_input(acme: llmbase.LLMBase, kwargs: dict[str, Any], field: str) -> None:
    acme.users.create("alice")
    acme.limits.set(3)
    with pytest.raises(ValidationError) as exc:
        acme.limits.set(**kwargs)
    assert exc.value.field == field
    assert [x.limit for x in acme.limits.list()] == [3]


def test_set_rejects_unknown_and_foreign_subjects(client: llmbase.LLMBase, acme: llmbase.LLMBase) -> None:
    client.admin().tenants.create("other")
    other = client.tenant("other")
    foreign_user = other.users.create("mallory")
    foreign_key = other.keys.create("theirs").key
    for kwargs in (
        {"user": uuid.uuid4()},
        {"user": "nobody"},
        {"user": foreign_user.id},
        {"user": "mallory"},
        {"api_key": uuid.uuid4()},
        {"api_key": foreign_key.id},
    ):
        with pytest.raises(NotFound):
            acme.limits.set(5, **kwargs)  # type: ignore[arg-type]
    assert acme.limits.list() == []
    # Another tenant's limit is invisible and untouchable.
    theirs = other.limits.set(1)
    with pytest.raises(NotFound):
        acme.limits.get(theirs.id)
    with pytest.raises(NotFound):
        acme.limits.delete(theirs.id)
    assert [x.id for x in other.limits.list()] == [theirs.id]
    # and their counters are theirs
    assert other.limits.consume().allowed
    assert acme.limits.consume().allowed and acme.limits.consume().allowed


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"requests": -1}, "requests"),
        ({"requests": 1.0}, "requests"),
        ({"requests": None}, "requests"),
        ({"tokens": -5}, "tokens"),
        ({"tokens": float("inf")}, "tokens"),
        ({"tokens": True}, "tokens"),
        ({"api_key": "x\x00"}, "api_key"),
    ],
)
def test_consume_rejects_bad_input(
    acme: llmbase.LLMBase, db_url: str, kwargs: dict[str, Any], field: str
) -> None:
    acme.limits.set(3)
    with pytest.raises(ValidationError) as exc:
        acme.limits.consume(**kwargs)
    assert exc.value.field == field
    assert counters(db_url) == []


def test_unknown_user_for_consume_is_not_found(acme: llmbase.LLMBase) -> None:
    with pytest.raises(NotFound):
        acme.limits.consume(user="nobody")


def test_window_rollover_and_maintenance(acme: llmbase.LLMBase, db_url: str) -> None:
    lim = acme.limits.set(1, window="minute")
    assert acme.limits.consume().allowed
    assert not acme.limits.consume().allowed
    # Age the window: the counter now belongs to a minute that ended.
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE llmbase.rate_limit_counters SET window_start = window_start - interval '2 minutes',"
            " window_end = window_end - interval '2 minutes'"
        )
    assert acme.limits.consume().allowed  # a new window
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
        assert limits_maintenance(conn)["counters_deleted"] == 1
        left = conn.execute(
            "SELECT limit_id, used, window_end > now() FROM llmbase.rate_limit_counters"
        ).fetchall()
    assert left == [(lim.id, 1, True)]


def test_windows_are_utc_aligned(acme: llmbase.LLMBase) -> None:
    acme.limits.set(5, window="day")
    acme.limits.set(5, window="hour")
    r = acme.limits.consume()
    now = datetime.now(UTC)
    for s in r.limits:
        length = {"hour": timedelta(hours=1), "day": timedelta(days=1)}[s.window]
        assert s.reset_at - s.window_start == length
        assert s.window_start <= now < s.reset_at
        assert s.window_start.astimezone(UTC).minute == 0
        assert math.isclose(s.reset_at.timestamp() % length.total_seconds(), 0)


async def test_async_limits(aclient: llmbase.AsyncLLMBase) -> None:
    await aclient.admin().tenants.create("acme")
    acme = aclient.tenant("acme")
    lim = await acme.limits.set(2, per_user=True)
    assert [(await acme.user("a").limits.consume()).allowed for _ in range(3)] == [True, True, False]
    assert (await acme.user("b").limits.check()).allowed
    assert [x.id for x in await acme.limits.list()] == [lim.id]
    await acme.limits.delete(lim.id)
    assert (await acme.user("a").limits.consume()).allowed


def test_cli_set_list_check_delete(db_url: str) -> None:
    from typer.testing import CliRunner

    from llmbase.cli import app

    runner = CliRunner()
    env = {"LLMBASE_DATABASE_URL": db_url}
    assert runner.invoke(app, ["tenants", "create", "acme"], env=env).exit_code == 0
    r = runner.invoke(app, ["limits", "set", "1", "-t", "acme", "--per-user", "--json"], env=env)
    assert r.exit_code == 0, r.output
    lim_id = json.loads(r.output)["id"]
    r = runner.invoke(app, ["limits", "budget", "12.5", "-t", "acme", "--mode", "soft"], env=env)
    assert r.exit_code == 0 and "12.5 USD/month (soft)" in r.output
    r = runner.invoke(app, ["limits", "list", "-t", "acme", "--json"], env=env)
    listed = json.loads(r.output)
    assert [x["id"] for x in listed["limits"]] == [lim_id] and listed["budgets"][0]["mode"] == "soft"
    r = runner.invoke(app, ["limits", "check", "-t", "acme", "--json"], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["allowed"] is True
    r = runner.invoke(app, ["limits", "set", "0", "-t", "acme"], env=env)
    assert r.exit_code == 1 and "limit" in r.output
    r = runner.invoke(app, ["limits", "set", "5", "-t", "acme", "--window", "week"], env=env)
    assert r.exit_code == 1 and "window" in r.output
    assert runner.invoke(app, ["limits", "delete", lim_id, "-t", "acme"], env=env).exit_code == 0
    r = runner.invoke(app, ["limits", "list", "-t", "acme", "--json"], env=env)
    assert json.loads(r.output)["limits"] == []
    r = runner.invoke(app, ["limits", "delete", lim_id, "-t", "acme"], env=env)
    assert r.exit_code == 1
