"""The guard instrumented calls pass: fast path, refusals, settle/cancel, context users."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase import RateLimited
from llmbase.limits import guard
from llmbase.limits.estimate import DEFAULT_OUTPUT_TOKENS, estimate

REQ = {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 20}
CALL: dict[str, Any] = {"provider": "openai", "model": "m1", "request_type": "chat", "request": REQ}
TOKENS = 11 + 4 + 20  # 44 chars ("user" + 40) / 4, one message, max_tokens


@pytest.fixture
def acme(client: llmbase.LLMBase) -> llmbase.LLMBase:
    client.admin().tenants.create("acme")
    return client.tenant("acme")


def used(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        return dict(
            conn.execute(
                "SELECT l.metric || ':' || l.subject || CASE WHEN l.per_user THEN '*' ELSE '' END, sum(c.used)::int"
                " FROM llmbase.rate_limit_counters c JOIN llmbase.rate_limits l ON l.id = c.limit_id GROUP BY 1"
            ).fetchall()
        )


def test_estimate() -> None:
    e = estimate(REQ, provider="openai", model="no-such-model-xyz", request_type="chat")
    assert (e.prompt_tokens, e.output_tokens, e.tokens, e.cost_usd) == (15, 20, TOKENS, None)
    e = estimate({"input": "abcd" * 10}, provider=None, model=None, request_type="embedding")
    assert (e.prompt_tokens, e.output_tokens) == (10, 0)
    e = estimate({"messages": [], "n": 2}, provider=None, model=None, request_type="chat")
    assert e.output_tokens == 2 * DEFAULT_OUTPUT_TOKENS
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10_000}}
    e = estimate(
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}, image]}],
            "max_output_tokens": 7,
        },
        provider=None,
        model=None,
        request_type="chat",
    )
    assert (e.prompt_tokens, e.output_tokens) == (6 + 4, 7)  # "user" "text" "abcd" "image_url": 21 chars
    e = estimate({"messages": "garbage", "max_tokens": -3}, provider=None, model=None, request_type="chat")
    assert e.output_tokens == DEFAULT_OUTPUT_TOKENS and e.prompt_tokens >= 1


def test_no_definitions_means_no_database_round_trip(
    acme: llmbase.LLMBase, caplog: pytest.LogCaptureFixture
) -> None:
    assert guard.admit(acme._core, **CALL) is None  # loads the (empty) definitions once
    pool = acme._core.db.pool()
    pool.close()  # any database access from now on would fail (and be logged)
    with caplog.at_level("WARNING", logger="llmbase.limits"):
        for _ in range(100):
            assert guard.admit(acme._core, **CALL) is None
    assert caplog.records == []


def test_rate_limited_with_retry_after(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.limits.set(2)
    t1 = guard.admit(acme._core, **CALL)
    t2 = guard.admit(acme._core, **CALL)
    assert t1 is not None and t2 is not None and t1.id is None  # no budget: no reservation
    with pytest.raises(RateLimited) as exc:
        guard.admit(acme._core, **CALL)
    assert exc.value.limit == "requests/minute" and exc.value.remaining == 0 and exc.value.limit_value == 2
    assert 0 < exc.value.retry_after <= 60
    assert used(db_url) == {"requests:tenant": 2}


def test_settle_corrects_tokens_and_cancel_gives_back(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.limits.set(10)
    acme.limits.set(1000, metric="tokens")
    t = guard.admit(acme._core, **CALL)
    assert t is not None
    assert used(db_url) == {"requests:tenant": 1, "tokens:tenant": TOKENS}
    t.settle(tokens=25, cost_usd=None)
    assert used(db_url) == {"requests:tenant": 1, "tokens:tenant": 25}
    t.settle(tokens=999, cost_usd=None)  # once only
    assert used(db_url)["tokens:tenant"] == 25
    c = guard.admit(acme._core, **CALL)
    assert c is not None
    c.cancel()
    assert used(db_url) == {"requests:tenant": 1, "tokens:tenant": 25}


def test_refused_budget_counts_no_request(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.limits.set(10)
    acme.prices.set("m1", input_per_mtok=1_000_000, output_per_mtok=1_000_000)  # $1 per token
    acme.budgets.set(TOKENS * 1.5)
    assert guard.admit(acme._core, **CALL) is not None
    with pytest.raises(llmbase.BudgetExceeded) as exc:
        guard.admit(acme._core, **CALL)
    assert exc.value.remaining == Decimal(TOKENS) / 2 and exc.value.scope == "tenant"
    assert used(db_url) == {"requests:tenant": 1}  # the refused call was not counted


def test_settle_and_cancel_never_raise(acme: llmbase.LLMBase, db_url: str) -> None:
    acme.limits.set(1000, metric="tokens")
    acme.prices.set("m1", input_per_mtok=1, output_per_mtok=1)
    acme.budgets.set(100)
    t = guard.admit(acme._core, **CALL)
    assert t is not None and t.id is not None
    t.settle(tokens="many", cost_usd=Decimal("NaN"))  # type: ignore[arg-type]
    assert used(db_url) == {"tokens:tenant": TOKENS}  # garbage usage keeps the estimate
    t2 = guard.admit(acme._core, **CALL)
    assert t2 is not None
    acme._core.db.pool().close()
    t2.settle(tokens=1, cost_usd=Decimal(1))  # the database is gone: logged, not raised
    t2.cancel()


def test_context_user_and_invalidation(acme: llmbase.LLMBase, db_url: str) -> None:
    assert guard.admit(acme._core, **CALL) is None
    acme.limits.set(1, per_user=True)  # visible at once in this process
    with acme.context(user="alice"):
        assert guard.admit(acme._core, **CALL) is not None
        with pytest.raises(RateLimited):
            guard.admit(acme._core, **CALL)
    with acme.context(user="bob"):
        assert guard.admit(acme._core, **CALL) is not None
    alice = acme.users.get("alice")
    assert acme.user(alice.id).limits.check().allowed is False
    # a client scoped to a user counts for that user
    with pytest.raises(RateLimited):
        guard.admit(acme.user("alice")._core, **CALL)


def test_other_process_changes_show_within_ttl(acme: llmbase.LLMBase, db_url: str) -> None:
    assert guard.admit(acme._core, **CALL) is None
    with psycopg.connect(db_url) as conn:  # "another process" adds a limit
        tid = conn.execute("SELECT id FROM llmbase.tenants WHERE slug = 'acme'").fetchone()
        assert tid is not None
        conn.execute(
            "INSERT INTO llmbase.rate_limits (tenant_id, subject, metric, period, limit_value)"
            " VALUES (%s, 'tenant', 'requests', 'minute', 1)",
            tid,
        )
    assert guard.admit(acme._core, **CALL) is None  # still cached
    llmbase.limits._defs.invalidate()  # what the TTL does after 5 s
    assert guard.admit(acme._core, **CALL) is not None


def test_operator_scope_is_never_limited(client: llmbase.LLMBase) -> None:
    assert guard.admit(client.admin()._core, **CALL) is None


async def test_aadmit(aclient: llmbase.AsyncLLMBase, db_url: str) -> None:
    await aclient.admin().tenants.create("acme")
    acme = aclient.tenant("acme")
    await acme.limits.set(1)
    await acme.limits.set(1000, metric="tokens")
    await acme.prices.set("m1", input_per_mtok=1, output_per_mtok=1)
    await acme.budgets.set(1)
    t = await guard.aadmit(acme._core, **CALL)
    assert t is not None and t.id is not None
    with pytest.raises(RateLimited):
        await guard.aadmit(acme._core, **CALL)
    await t.settle(tokens=5, cost_usd=Decimal("0.001"))
    assert used(db_url) == {"requests:tenant": 1, "tokens:tenant": 5}
    assert [u.spent_usd for u in await acme.budgets.usage()] == [Decimal("0.001")]
    await t.cancel()  # after settle: nothing
    assert used(db_url)["requests:tenant"] == 1
    assert uuid.UUID(str(t.id)) == t.id
