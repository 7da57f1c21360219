"""Budgets: reservations, settlement, soft/hard, month rollover, expiry, unknown prices,
bad input, and the required race (50 concurrent admits against a budget that covers 10)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase import BudgetExceeded, NotFound, PermissionDenied, ValidationError
from llmbase.limits import guard, limits_maintenance
from llmbase.limits.estimate import estimate

D = Decimal
ZERO = uuid.UUID(int=0)


@pytest.fixture
def acme(client: llmbase.LLMBase) -> llmbase.LLMBase:
    client.admin().tenants.create("acme")
    return client.tenant("acme")


def periods(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT budget_id, subject_key, spent_usd, reserved_usd FROM llmbase.budget_periods"
            " ORDER BY budget_id, subject_key"
        ).fetchall()


def test_reserve_settle_release(acme: llmbase.LLMBase, db_url: str) -> None:
    b = acme.budgets.set("1.00")
    assert (b.cap_usd, b.mode, b.user_id, b.per_user, b.unpriced_call_usd) == (
        D("1"),
        "hard",
        None,
        False,
        None,
    )
    r1 = acme.budgets.reserve("0.40")
    r2 = acme.budgets.reserve(D("0.40"))
    r3 = acme.budgets.reserve(0.4)
    assert (r1.allowed, r2.allowed, r3.allowed) == (True, True, False)
    refusing = r3.refusing
    assert refusing is not None and refusing.remaining_usd == D("0.2")
    with pytest.raises(BudgetExceeded) as exc:
        r3.raise_for_budget()
    assert exc.value.budget == D("1") and exc.value.remaining == D("0.2") and exc.value.scope == "tenant"
    assert exc.value.retry_after > 0
    assert periods(db_url) == [(b.id, ZERO, D("0"), D("0.8"))]
    assert acme.budgets.settle(r1.id, "0.10") == 1
    assert acme.budgets.settle(r1.id, "0.10") == 0  # once
    assert acme.budgets.release(r2.id) == 1
    assert periods(db_url) == [(b.id, ZERO, D("0.1"), D("0"))]
    usage = acme.budgets.usage()
    assert [(u.spent_usd, u.reserved_usd, u.remaining_usd) for u in usage] == [(D("0.1"), D("0"), D("0.9"))]
    # settling with an unknown actual cost keeps the estimate as spent
    r4 = acme.budgets.reserve("0.25")
    acme.budgets.settle(r4.id, None)
    assert periods(db_url) == [(b.id, ZERO, D("0.35"), D("0"))]


def test_check_reserves_nothing(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.budgets.set("1.00")
    assert acme.budgets.check("0.99").allowed
    assert not acme.budgets.check("1.01").allowed
    assert periods(db_url) == []


def test_soft_budget_admits_and_flags(acme: llmbase.LLMBase) -> None:
    acme.budgets.set("0.50", mode="soft")
    first = acme.budgets.reserve("0.40")
    over = acme.budgets.reserve("0.40")
    assert first.allowed and not first.flagged
    assert over.allowed and over.flagged
    over.raise_for_budget()  # soft: never raises


def test_soft_budget_guard_logs_a_warning(acme: llmbase.LLMBase, caplog: pytest.LogCaptureFixture) -> None:
    acme.prices.set("m1", input_per_mtok=1_000_000, output_per_mtok=1_000_000)  # $1 per token
    acme.budgets.set("5", mode="soft")
    req = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    with caplog.at_level("WARNING", logger="llmbase.limits"):
        ticket = guard.admit(acme._core, provider="openai", model="m1", request_type="chat", request=req)
    assert ticket is not None and ticket.id is not None
    assert any("soft budget" in r.getMessage() for r in caplog.records)


def test_per_user_and_multi_budget_all_or_none(acme: llmbase.LLMBase, db_url: str) -> None:
    per_user = acme.budgets.set("1.00", per_user=True)
    tenant = acme.budgets.set("1.50")
    alice, bob = acme.user("alice"), acme.user("bob")
    assert alice.budgets.reserve("0.8").allowed
    assert not alice.budgets.reserve("0.3").allowed  # alice's own cap
    assert bob.budgets.reserve("0.6").allowed
    r = bob.budgets.reserve("0.2")  # bob's cap allows it, the tenant's does not (0.8+0.6+0.2)
    assert not r.allowed
    by_id = {s.budget_id: s for s in r.budgets}
    assert by_id[per_user.id].allowed and not by_id[tenant.id].allowed
    # nothing of the refused reservation stayed on bob's budget
    bob_id = acme.users.get("bob").id
    rows = {(bid, key): reserved for bid, key, _, reserved in periods(db_url)}
    assert rows[(per_user.id, bob_id)] == D("0.6")
    assert rows[(tenant.id, ZERO)] == D("1.4")


def test_month_rollover(acme: llmbase.LLMBase, db_url: str) -> None:
    b = acme.budgets.set("1.00")
    assert acme.budgets.reserve("1.00").allowed
    assert not acme.budgets.reserve("0.01").allowed
    # Move this month's spend to last month: the new month starts empty.
    with psycopg.connect(db_url) as conn:
        conn.execute("SET session_replication_role = replica")  # FK from reservations
        conn.execute(
            "UPDATE llmbase.budget_periods SET period_start = (period_start - interval '1 month')::date,"
            " spent_usd = reserved_usd, reserved_usd = 0"
        )
        conn.execute("DELETE FROM llmbase.budget_reservations")
    r = acme.budgets.reserve("0.60")
    assert r.allowed and r.budgets[0].spent_usd == 0
    now = datetime.now(UTC)
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert r.budgets[0].reset_at == nxt
    assert {u.period_start.month for u in acme.budgets.usage(all_months=True)} == {
        now.month,
        (now.month - 2) % 12 + 1,
    }
    assert [u.spent_usd for u in acme.budgets.usage()] == [D("0")]
    assert b.id == r.budgets[0].budget_id


def test_expired_reservations_are_released(acme: llmbase.LLMBase, db_url: str) -> None:
    b = acme.budgets.set("1.00")
    stale = acme.budgets.reserve("0.70", ttl=1)
    assert not acme.budgets.reserve("0.50").allowed
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE llmbase.budget_reservations SET expires_at = now() - interval '1 minute'")
        conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
        assert limits_maintenance(conn)["reservations_released"] == 1
    assert periods(db_url) == [(b.id, ZERO, D("0"), D("0"))]
    # A late settle still records what was spent (the reservation no longer counts twice).
    assert acme.budgets.settle(stale.id, "0.30") == 1
    assert periods(db_url) == [(b.id, ZERO, D("0.3"), D("0"))]


def test_expired_reservation_does_not_block_without_maintenance(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.budgets.set("1.00")
    acme.budgets.reserve("0.90")
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE llmbase.budget_reservations SET expires_at = now() - interval '1 second'")
    assert acme.budgets.reserve("0.50").allowed  # the refusal released the expired one first


def test_released_reservations_are_purged_a_day_later(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.budgets.set("1.00")
    acme.budgets.reserve("0.10")
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE llmbase.budget_reservations SET expires_at = now() - interval '2 days'")
        conn.execute("SELECT set_config('llmbase.admin', 'on', false)")
        got = limits_maintenance(conn)
        assert (got["reservations_released"], got["reservations_deleted"]) == (1, 1)
        assert conn.execute("SELECT count(*) FROM llmbase.budget_reservations").fetchone() == (0,)


def test_unknown_price(acme: llmbase.LLMBase) -> None:
    req = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
    call = {"provider": "nowhere", "model": "no-such-model-xyz", "request_type": "chat", "request": req}
    b = acme.budgets.set("10")
    # A hard budget refuses a call it cannot price...
    with pytest.raises(BudgetExceeded) as exc:
        guard.admit(acme._core, **call)
    assert "no known price" in str(exc.value)
    assert not acme.budgets.reserve(None).allowed
    # ...unless it says what such a call reserves.
    acme.budgets.set("10", unpriced_call_usd="2.5")
    ticket = guard.admit(acme._core, **call)
    assert ticket is not None
    ticket.settle(tokens=10, cost_usd=None)  # still unknown: the assumed amount is spent
    assert [u.spent_usd for u in acme.budgets.usage()] == [D("2.5")]
    # A soft budget admits unpriced calls.
    acme.budgets.set("10", mode="soft")
    assert guard.admit(acme._core, **call) is not None
    assert b.id == acme.budgets.list()[0].id


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cap_usd": -1}, "cap_usd"),
        ({"cap_usd": 0}, "cap_usd"),
        ({"cap_usd": float("nan")}, "cap_usd"),
        ({"cap_usd": float("inf")}, "cap_usd"),
        ({"cap_usd": "NaN"}, "cap_usd"),
        ({"cap_usd": "ten"}, "cap_usd"),
        ({"cap_usd": "1\x00"}, "cap_usd"),
        ({"cap_usd": True}, "cap_usd"),
        ({"cap_usd": None}, "cap_usd"),
        ({"cap_usd": 10**10}, "cap_usd"),
        ({"cap_usd": 5, "mode": "strict"}, "mode"),
        ({"cap_usd": 5, "per_user": 1}, "per_user"),
        ({"cap_usd": 5, "unpriced_call_usd": -0.5}, "unpriced_call_usd"),
        ({"cap_usd": 5, "user": "alice", "per_user": True}, "per_user"),
        ({"cap_usd": 5, "user": 7}, "user"),
    ],
)
def test_set_rejects_bad_input(acme: llmbase.LLMBase, kwargs: dict[str, Any], field: str) -> None:
    acme.users.create("alice")
    acme.budgets.set("3")
    with pytest.raises(ValidationError) as exc:
        acme.budgets.set(**kwargs)
    assert exc.value.field == field
    assert [b.cap_usd for b in acme.budgets.list()] == [D("3")]


def test_reserve_and_settle_reject_bad_input(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.budgets.set("3")
    for kwargs, field in (
        ({"estimate_usd": -1}, "estimate_usd"),
        ({"estimate_usd": float("nan")}, "estimate_usd"),
        ({"estimate_usd": "x"}, "estimate_usd"),
        ({"estimate_usd": 1, "ttl": 0}, "ttl"),
        ({"estimate_usd": 1, "ttl": float("inf")}, "ttl"),
        ({"estimate_usd": 1, "ttl": "60"}, "ttl"),
    ):
        with pytest.raises(ValidationError) as exc:
            acme.budgets.reserve(**kwargs)
        assert exc.value.field == field
    with pytest.raises(ValidationError):
        acme.budgets.settle("nope", 1)
    with pytest.raises(ValidationError):
        acme.budgets.settle(uuid.uuid4(), -1)
    with pytest.raises(ValidationError):
        acme.budgets.settle(None, 1)  # type: ignore[arg-type]
    assert acme.budgets.settle(uuid.uuid4(), 1) == 0  # unknown reservation: nothing settled
    assert periods(db_url) == []


def test_unknown_and_foreign_users(client: llmbase.LLMBase, acme: llmbase.LLMBase) -> None:
    client.admin().tenants.create("other")
    other = client.tenant("other")
    mallory = other.users.create("mallory")
    for user in (uuid.uuid4(), mallory.id, "mallory", "nobody"):
        with pytest.raises(NotFound):
            acme.budgets.set("5", user=user)
    assert acme.budgets.list() == []
    theirs = other.budgets.set("5")
    with pytest.raises(NotFound):
        acme.budgets.get(theirs.id)
    with pytest.raises(NotFound):
        acme.budgets.delete(theirs.id)
    # another tenant's reservation cannot be settled or released from here
    res = other.budgets.reserve("1")
    assert acme.budgets.settle(res.id, "0") == 0 and acme.budgets.release(res.id) == 0
    assert [u.reserved_usd for u in other.budgets.usage()] == [D("1")]
    with pytest.raises(PermissionDenied):
        acme.user("alice").budgets.set("1")


def test_fifty_concurrent_admits_against_a_budget_that_covers_ten(db_url: str) -> None:
    """Required: at most 10 tickets, and the settled spend never exceeds the cap."""
    client = llmbase.connect(db_url, migrate=False, pool_max_size=50, pool_min_size=50)
    try:
        client.admin().tenants.create("acme")
        acme = client.tenant("acme")
        acme.prices.set("m1", input_per_mtok=3, output_per_mtok=15)
        req = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 200}
        overrides = llmbase.pricing.pricer(client._core.db).overrides(acme._core.scope().require_tenant())
        est = estimate(req, provider="openai", model="m1", request_type="chat", overrides=overrides).cost_usd
        assert est is not None and est > 0
        cap = est * 10
        acme.budgets.set(cap)
        barrier = threading.Barrier(50)
        tickets: list[guard.Ticket] = []
        refused: list[BudgetExceeded] = []
        lock = threading.Lock()

        def worker() -> None:
            barrier.wait()
            try:
                t = guard.admit(acme._core, provider="openai", model="m1", request_type="chat", request=req)
            except BudgetExceeded as exc:
                with lock:
                    refused.append(exc)
                return
            assert t is not None
            with lock:
                tickets.append(t)

        threads = [threading.Thread(target=worker) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(tickets) == 10 and len(refused) == 40
        assert all(e.remaining is not None and e.remaining < est for e in refused)
        for t in tickets:  # actual usage at most the estimate (max_tokens bounds the output)
            t.settle(tokens=150, cost_usd=est)
        (usage,) = acme.budgets.usage()
        assert usage.spent_usd <= cap and usage.spent_usd == cap and usage.reserved_usd == 0
        with pytest.raises(BudgetExceeded):
            guard.admit(acme._core, provider="openai", model="m1", request_type="chat", request=req)
    finally:
        client.close()


async def test_async_budgets(aclient: llmbase.AsyncLLMBase) -> None:
    await aclient.admin().tenants.create("acme")
    acme = aclient.tenant("acme")
    b = await acme.budgets.set("1")
    r = await acme.budgets.reserve("0.7")
    assert r.allowed and not (await acme.budgets.reserve("0.7")).allowed
    assert await acme.budgets.settle(r.id, "0.2") == 1
    assert [u.spent_usd for u in await acme.budgets.usage()] == [D("0.2")]
    assert (await acme.budgets.check("0.8")).allowed
    await acme.budgets.delete(b.id)
    assert await acme.budgets.list() == []
