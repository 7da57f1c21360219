"""End to end: instrumented OpenAI and Anthropic calls over HTTP (stub server) reach
llmbase.requests through the real writer, with their ids, usage, errors and cost."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import genai_prices
import openai
import psycopg
import pytest
from psycopg.rows import dict_row

import llmbase
from llmbase.pricing import CATALOG_SOURCE
from stubs import TEXT, USAGE, StubServer, running_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


MSGS = [{"role": "user", "content": "Say hello"}]


def _rows(db_url: str, where: str = "true", *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM llmbase.requests WHERE {where} ORDER BY created_at",  # test-only SQL
            params,  # type: ignore[arg-type]
        ).fetchall()


def _catalog(model: str, provider: str, **usage: int) -> Decimal:
    total = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider).total_price
    return total.quantize(Decimal("1e-10"))


def test_openai_calls_reach_the_database(client: llmbase.LLMBase, db_url: str, stub: StubServer) -> None:
    alice = client.user("alice")
    conv = alice.conversations.create(title="support")
    oai = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-x", max_retries=0), client
    )
    with client.context(user="alice", conversation=conv, tags=["e2e"], metadata={"page": "chat"}):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert (
            "".join(
                c.choices[0].delta.content or ""
                for c in oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
            )
            == TEXT
        )
        oai.embeddings.create(model="text-embedding-3-small", input="x")
        with pytest.raises(openai.RateLimitError):
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, extra_headers={"x-stub-scenario": "429"}
            )
        oai.chat.completions.create(model="acme-llm-9000", messages=MSGS)
    oai.close()
    assert client.requests.flush(timeout=30)

    rows = _rows(db_url)
    assert len(rows) == 5
    uid = alice.scope().user_id
    for r in rows:
        assert (r["user_id"], r["conversation_id"]) == (uid, conv.id)
        assert r["tags"] == ["e2e"] and r["metadata"]["page"] == "chat"
        assert r["provider"] == "openai" and r["latency_ms"] > 0
    chat, stream, emb, limited, unknown = rows
    assert (chat["request_type"], chat["status"], chat["stream"]) == ("chat", "success", False)
    assert (
        chat["tokens_prompt"],
        chat["tokens_completion"],
        chat["tokens_total"],
        chat["tokens_cached"],
        chat["tokens_reasoning"],
    ) == (USAGE["prompt"], USAGE["completion"], USAGE["total"], USAGE["cached"], USAGE["reasoning"])
    assert chat["request_body"]["messages"] == MSGS
    assert chat["response_body"]["choices"][0]["message"]["content"] == TEXT
    expected = _catalog("gpt-4o-mini", "openai", input_tokens=12, output_tokens=5, cache_read_tokens=4)
    assert chat["cost_usd"] == expected and chat["cost_source"] == CATALOG_SOURCE and not chat["cost_unknown"]

    assert stream["stream"] and stream["ttft_ms"] > 0 and stream["ttft_ms"] <= stream["latency_ms"]
    assert stream["tokens_total"] == USAGE["total"] and stream["cost_usd"] == expected

    assert emb["request_type"] == "embedding" and emb["tokens_prompt"] == USAGE["embedding_prompt"]
    assert emb["cost_usd"] == _catalog("text-embedding-3-small", "openai", input_tokens=8)

    assert (limited["status"], limited["http_status"], limited["error_kind"]) == (
        "rate_limited",
        429,
        "RateLimitError",
    )
    assert limited["cost_usd"] is None and not limited["cost_unknown"]  # not billed

    assert unknown["status"] == "success" and unknown["cost_usd"] is None and unknown["cost_unknown"] is True


def test_override_wins_in_the_log(client: llmbase.LLMBase, db_url: str, stub: StubServer) -> None:
    client.prices.set("gpt-4o-mini", input_per_mtok=100, output_per_mtok=200, cached_input_per_mtok=10)
    oai = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-x", max_retries=0), client
    )
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    oai.close()
    assert client.requests.flush(timeout=30)
    (r,) = _rows(db_url)
    # 8 uncached prompt tokens at $100, 4 cached at $10, 5 completion at $200 per MTok
    assert r["cost_usd"] == (Decimal(8 * 100 + 4 * 10 + 5 * 200) / 10**6).quantize(Decimal("1e-10"))
    assert r["cost_source"] == "override" and not r["cost_unknown"]


def test_anthropic_calls_reach_the_database(client: llmbase.LLMBase, db_url: str, stub: StubServer) -> None:
    client.tenants.create(slug="acme", name="Acme")
    acme_bob = client.tenant("acme").user("bob")
    claude = llmbase.instrument(
        anthropic.Anthropic(base_url=stub.anthropic_base_url, api_key="k", max_retries=0), client
    )
    with acme_bob.context():  # calls inside are logged for tenant acme, user bob
        claude.messages.create(model="claude-3-5-sonnet-latest", max_tokens=64, messages=MSGS)
        with claude.messages.stream(model="claude-3-5-sonnet-latest", max_tokens=64, messages=MSGS) as s:
            assert s.get_final_text() == TEXT
        with pytest.raises(anthropic.InternalServerError):
            claude.messages.create(
                model="claude-3-5-sonnet-latest",
                max_tokens=8,
                messages=MSGS,
                extra_headers={"x-stub-scenario": "500"},
            )
    claude.close()
    assert client.requests.flush(timeout=30)
    rows = _rows(db_url)
    scope = acme_bob.scope()
    assert {(r["tenant_id"], r["user_id"], r["provider"]) for r in rows} == {
        (scope.tenant_id, scope.user_id, "anthropic")
    }
    create, stream, failed = rows
    expected = _catalog(
        "claude-3-5-sonnet-latest", "anthropic", input_tokens=12, output_tokens=5, cache_read_tokens=4
    )
    for r in (create, stream):
        assert (r["tokens_prompt"], r["tokens_cached"], r["tokens_completion"]) == (12, 4, 5)
        assert r["cost_usd"] == expected
    assert stream["stream"] and stream["ttft_ms"] > 0
    assert (failed["status"], failed["http_status"], failed["error_kind"]) == (
        "error",
        500,
        "InternalServerError",
    )
    # the default tenant's own view does not see acme's calls (RLS), the acme tenant does
    assert client.requests.flush(timeout=1)


async def test_async_clients_reach_the_database(
    aclient: llmbase.AsyncLLMBase, db_url: str, stub: StubServer
) -> None:
    oai = llmbase.instrument(
        openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), aclient
    )
    claude = llmbase.instrument(
        anthropic.AsyncAnthropic(base_url=stub.anthropic_base_url, api_key="k", max_retries=0), aclient
    )
    with aclient.context(user="carol"):
        stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
        async for _ in stream:
            pass
        async with claude.messages.stream(
            model="claude-3-5-sonnet-latest", max_tokens=64, messages=MSGS
        ) as s:
            async for _ in s.text_stream:
                pass
    await oai.close()
    await claude.close()
    assert await aclient.requests.flush(timeout=30)
    rows = _rows(db_url)
    assert [(r["provider"], r["stream"], r["status"]) for r in rows] == [
        ("openai", True, "success"),
        ("anthropic", True, "success"),
    ]
    assert rows[0]["user_id"] == rows[1]["user_id"] is not None
    assert all(r["cost_usd"] is not None and r["tokens_total"] == USAGE["total"] for r in rows)
