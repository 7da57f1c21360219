"""Instrumented calls pass the limits guard before the provider is called: refusals reach
the caller as RateLimited / BudgetExceeded and the provider (the stub server) never sees
them; admitted calls settle to their actual cost. Includes the issue's required test: 50
concurrent instrumented calls against a hard budget that covers 10."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import openai
import psycopg
import pytest
from psycopg.rows import dict_row

import llmbase
from llmbase.errors import BudgetExceeded, RateLimited
from stubs import StubServer, running_stub

MSGS = [{"role": "user", "content": "Say hello"}]
MODEL = "stub-model"  # priced by a tenant override: exactly $1 per request, tokens free


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with running_stub() as s:  # one per test: the received count is the test's own
        yield s


def _calls(stub: StubServer) -> int:
    return sum(1 for r in stub.received if r.path.endswith("/chat/completions"))


def _dollar_per_call(client: llmbase.LLMBase) -> None:
    client.prices.set(MODEL, input_per_mtok=0, output_per_mtok=0, per_request=1)


def test_fifty_concurrent_calls_against_a_budget_covering_ten(
    client: llmbase.LLMBase, stub: StubServer
) -> None:
    _dollar_per_call(client)
    client.budgets.set(10, mode="hard")
    sdk = llmbase.instrument(openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), client)
    start = threading.Barrier(50)

    def one(i: int) -> str:
        start.wait()
        try:
            sdk.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=5, seed=i)
        except BudgetExceeded as exc:
            return "refused" if exc.retry_after > 0 else "refused without retry_after"
        return "ok"

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(one, range(50)))
    assert outcomes.count("ok") == _calls(stub) <= 10  # at most 10 reached the provider
    assert outcomes.count("ok") == 10  # and the budget was used, not refused early
    assert outcomes.count("refused") == 40
    (usage,) = client.budgets.usage()
    assert usage.spent_usd == Decimal(10) and usage.reserved_usd == 0  # settled, within the cap
    assert usage.spent_usd <= usage.cap_usd
    sdk.close()


def test_rate_limit_refuses_before_the_provider(
    client: llmbase.LLMBase, stub: StubServer, db_url: str
) -> None:
    client.limits.set(2, metric="requests", window="minute")
    sdk = llmbase.instrument(openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), client)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    with pytest.raises(RateLimited) as err:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.retry_after > 0 and err.value.remaining == 0
    assert _calls(stub) == 2
    assert client.requests.flush()
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT status, error_kind FROM llmbase.requests ORDER BY created_at").fetchall()
    assert rows[-1] == {"status": "rate_limited", "error_kind": "RateLimited"}
    # limits=False turns the guard off for this SDK client.
    llmbase.instrument(sdk, client, limits=False)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert _calls(stub) == 3
    sdk.close()


def test_failed_call_releases_and_cache_hits_skip_the_guard(
    client: llmbase.LLMBase, stub: StubServer
) -> None:
    _dollar_per_call(client)
    client.budgets.set(2, mode="hard")
    sdk = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), client, cache=True
    )
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-stub-scenario": "500"})
    (usage,) = client.budgets.usage()
    assert usage.spent_usd == 0 and usage.reserved_usd == 0  # cancelled: no usage, no cost
    for _ in range(5):  # one call, then hits: the budget counts one
        sdk.chat.completions.create(model=MODEL, messages=MSGS)
    (usage,) = client.budgets.usage()
    assert usage.spent_usd == 1 and usage.reserved_usd == 0
    sdk.chat.completions.create(model=MODEL, messages=MSGS, seed=1)
    with pytest.raises(BudgetExceeded):
        sdk.chat.completions.create(model=MODEL, messages=MSGS, seed=2)
    sdk.chat.completions.create(model=MODEL, messages=MSGS, seed=1)  # a hit is free: admitted
    sdk.close()


async def test_async_budget(aclient: llmbase.AsyncLLMBase, stub: StubServer) -> None:
    await aclient.prices.set(MODEL, input_per_mtok=0, output_per_mtok=0, per_request=1)
    await aclient.budgets.set(3, mode="hard")
    sdk = llmbase.instrument(
        openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), aclient
    )
    results: list[Any] = []
    for i in range(5):
        try:
            await sdk.chat.completions.create(model=MODEL, messages=MSGS, seed=i)
            results.append("ok")
        except BudgetExceeded:
            results.append("refused")
    assert results == ["ok", "ok", "ok", "refused", "refused"]
    assert _calls(stub) == 3
    (usage,) = await aclient.budgets.usage()
    assert usage.spent_usd == 3 and usage.reserved_usd == 0
    await sdk.close()
