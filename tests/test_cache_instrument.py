"""`llmbase.instrument(sdk, cache=...)`: hits come back as the official SDKs' own types
(bodies and replayed streams) without calling the provider (counted on the stub server),
and are logged with cache_hit, cost 0 and the cost they saved."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import psycopg
import pytest
from psycopg.rows import dict_row

import llmbase
from llmbase.cache import CachePolicy
from llmbase.errors import ConfigurationError, ValidationError
from stubs import TEXT, StubServer, running_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


MSGS = [{"role": "user", "content": "Say hello"}]
MODEL = "gpt-4o-mini"
CLAUDE = "claude-3-5-sonnet-latest"


def _hits(stub: StubServer, path: str) -> int:
    return sum(1 for r in stub.received if r.path.endswith(path))


def _rows(db_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT cache_hit, cost_usd, cost_saved_usd, status, stream, model, metadata, tokens_total"
            " FROM llmbase.requests ORDER BY created_at"
        ).fetchall()


@pytest.fixture
def oai(client: llmbase.LLMBase, stub: StubServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    yield llmbase.instrument(c, client, cache=True)
    c.close()


@pytest.fixture
def claude(client: llmbase.LLMBase, stub: StubServer) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(base_url=stub.anthropic_base_url, api_key="sk-ant", max_retries=0)
    yield llmbase.instrument(c, client, cache=CachePolicy(ttl=600))
    c.close()


# -- OpenAI ---------------------------------------------------------------------------------
def test_chat_hit_is_a_chat_completion_and_logged(
    oai: openai.OpenAI, client: llmbase.LLMBase, db_url: str, stub: StubServer
) -> None:
    before = _hits(stub, "/chat/completions")
    first = oai.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, seed=11)
    second = oai.chat.completions.create(model=MODEL, messages=MSGS, temperature=0.0, seed=11, user="u2")
    assert _hits(stub, "/chat/completions") == before + 1  # the provider saw one call
    assert isinstance(second, openai.types.chat.ChatCompletion)
    assert second == first and second.choices[0].message.content == TEXT
    assert second.usage is not None and second.usage.total_tokens == first.usage.total_tokens  # type: ignore[union-attr]
    assert client.requests.flush()
    miss, hit = _rows(db_url)
    assert miss["cache_hit"] is False and miss["cost_usd"] > 0
    assert hit["cache_hit"] is True and hit["cost_usd"] == 0
    assert hit["cost_saved_usd"] == miss["cost_usd"]
    assert hit["status"] == "success" and hit["model"] == MODEL and hit["tokens_total"] is None
    assert hit["metadata"]["cache"]["tokens_total"] == miss["tokens_total"]
    st = client.cache.stats()
    assert st.entries == 1 and st.hits == 1 and st.cost_saved_usd == miss["cost_usd"]


def test_different_parameters_miss(oai: openai.OpenAI, stub: StubServer) -> None:
    before = _hits(stub, "/chat/completions")
    oai.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, seed=12)
    oai.chat.completions.create(model=MODEL, messages=MSGS, temperature=0.5, seed=12)
    oai.chat.completions.create(model=MODEL, messages=MSGS, temperature=0, seed=12, max_tokens=3)
    assert _hits(stub, "/chat/completions") == before + 3


def test_chat_stream_is_replayed_as_a_stream(
    oai: openai.OpenAI, client: llmbase.LLMBase, db_url: str, stub: StubServer
) -> None:
    def read(**extra: Any) -> tuple[Any, list[Any]]:
        s = oai.chat.completions.create(model=MODEL, messages=MSGS, seed=13, stream=True, **extra)
        with s as managed:
            return s, list(managed)

    before = _hits(stub, "/chat/completions")
    _, live_chunks = read()
    replay, replay_chunks = read()
    assert _hits(stub, "/chat/completions") == before + 1
    assert isinstance(replay, openai.Stream)
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in replay_chunks)
    assert replay_chunks == live_chunks  # the hidden usage chunk stays hidden
    assert "".join(c.choices[0].delta.content or "" for c in replay_chunks if c.choices) == TEXT
    # The caller who asks for usage gets the usage chunk from the same entry.
    _, with_usage = read(stream_options={"include_usage": True})
    assert _hits(stub, "/chat/completions") == before + 1
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    # A non-stream call of the same request is another shape: a miss.
    oai.chat.completions.create(model=MODEL, messages=MSGS, seed=13)
    assert _hits(stub, "/chat/completions") == before + 2
    assert client.requests.flush()
    rows = _rows(db_url)
    assert [r["cache_hit"] for r in rows] == [False, True, True, False]
    assert rows[1]["stream"] is True and rows[1]["cost_saved_usd"] == rows[0]["cost_usd"]


def test_failures_and_partial_streams_are_not_cached(oai: openai.OpenAI, client: llmbase.LLMBase) -> None:
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(
            model=MODEL, messages=MSGS, seed=14, extra_headers={"x-stub-scenario": "500"}
        )
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(
            model=MODEL,
            messages=MSGS,
            seed=15,
            stream=True,
            extra_headers={"x-stub-scenario": "midstream-error"},
        ):
            pass
    # A stream the caller abandons is partial too.
    s = oai.chat.completions.create(model=MODEL, messages=MSGS, seed=16, stream=True)
    next(iter(s))
    s.close()
    assert client.cache.stats().entries == 0


def test_responses_and_embeddings(oai: openai.OpenAI, stub: StubServer) -> None:
    before = _hits(stub, "/responses")
    r1 = oai.responses.create(model=MODEL, input="hi")
    r2 = oai.responses.create(model=MODEL, input="hi")
    assert isinstance(r2, openai.types.responses.Response) and r2 == r1 and r2.output_text == TEXT
    ev1 = list(oai.responses.create(model=MODEL, input="hi", stream=True))
    ev2 = list(oai.responses.create(model=MODEL, input="hi", stream=True))
    assert ev2 == ev1 and ev2[-1].type == "response.completed"
    with oai.responses.stream(model=MODEL, input="hi") as helper:
        final = helper.get_final_response()
    assert final.output_text == TEXT
    assert _hits(stub, "/responses") == before + 2
    e_before = _hits(stub, "/embeddings")
    v1 = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    v2 = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert isinstance(v2, openai.types.CreateEmbeddingResponse)
    assert v2.data[1].embedding == v1.data[1].embedding and len(v2.data) == 2
    assert _hits(stub, "/embeddings") == e_before + 1


def test_raw_response_and_parse_bypass_the_cache(oai: openai.OpenAI, stub: StubServer) -> None:
    before = _hits(stub, "/chat/completions")
    oai.chat.completions.create(model=MODEL, messages=MSGS, seed=17)
    raw = oai.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS, seed=17)
    assert raw.parse().choices[0].message.content == TEXT  # a raw response, as asked
    assert _hits(stub, "/chat/completions") == before + 2


def test_tenants_do_not_share_instrumented_hits(client: llmbase.LLMBase, stub: StubServer) -> None:
    client.tenants.create("ta")
    client.tenants.create("tb")
    a = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0),
        client.tenant("ta"),
        cache=True,
    )
    b = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0),
        client.tenant("tb"),
        cache=True,
    )
    before = _hits(stub, "/chat/completions")
    a.chat.completions.create(model=MODEL, messages=MSGS, seed=18)
    b.chat.completions.create(model=MODEL, messages=MSGS, seed=18)  # identical, other tenant: a miss
    assert _hits(stub, "/chat/completions") == before + 2
    a.chat.completions.create(model=MODEL, messages=MSGS, seed=18)
    b.chat.completions.create(model=MODEL, messages=MSGS, seed=18)
    assert _hits(stub, "/chat/completions") == before + 2
    # A context block's client decides the tenant too.
    shared = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), client, cache=True
    )
    with client.tenant("tb").context():
        shared.chat.completions.create(model=MODEL, messages=MSGS, seed=18)
    assert _hits(stub, "/chat/completions") == before + 2
    shared.chat.completions.create(model=MODEL, messages=MSGS, seed=18)  # the default tenant: a miss
    assert _hits(stub, "/chat/completions") == before + 3


def test_cache_policy_options(client: llmbase.LLMBase, stub: StubServer) -> None:
    c = openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0)
    llmbase.instrument(
        c, client, cache={"namespace": "v1", "streams": False, "request_types": frozenset({"chat"})}
    )
    before = _hits(stub, "/chat/completions")
    for _ in range(2):
        list(c.chat.completions.create(model=MODEL, messages=MSGS, seed=19, stream=True))
    assert _hits(stub, "/chat/completions") == before + 2  # streams off
    e_before = _hits(stub, "/embeddings")
    for _ in range(2):
        c.embeddings.create(model="text-embedding-3-small", input="z")
    assert _hits(stub, "/embeddings") == e_before + 2  # not a cached type
    c.chat.completions.create(model=MODEL, messages=MSGS, seed=19)
    assert client.cache.get({"model": MODEL, "messages": MSGS, "seed": 19}, provider="openai", namespace="v1")
    with pytest.raises(ValidationError):
        llmbase.instrument(c, client, cache={"ttl": -5})
    with pytest.raises(ValidationError):
        llmbase.instrument(c, client, cache="yes")
    with pytest.raises(ConfigurationError):
        llmbase.instrument(openai.OpenAI(api_key="k"), log=lambda **f: None, cache=True)
    c.close()


# -- Anthropic ------------------------------------------------------------------------------
def test_anthropic_message_and_streams(
    claude: anthropic.Anthropic, client: llmbase.LLMBase, db_url: str, stub: StubServer
) -> None:
    before = _hits(stub, "/v1/messages")
    m1 = claude.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS)
    m2 = claude.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS)
    assert isinstance(m2, anthropic.types.Message) and m2 == m1
    raw1 = [e for e in claude.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, stream=True)]
    replay = claude.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, stream=True)
    assert isinstance(replay, anthropic.Stream)
    assert list(replay) == raw1
    # The messages.stream() helper shares the stream entry, with its conveniences.
    with claude.messages.stream(model=CLAUDE, max_tokens=64, messages=MSGS) as s:
        assert s.get_final_text() == TEXT
    with claude.messages.stream(model=CLAUDE, max_tokens=64, messages=MSGS) as s:
        assert "".join(s.text_stream) == TEXT
    assert _hits(stub, "/v1/messages") == before + 2
    # A helper miss stores a replayable stream too.
    with claude.messages.stream(model=CLAUDE, max_tokens=32, messages=MSGS) as s:
        live = s.get_final_message()
    with claude.messages.stream(model=CLAUDE, max_tokens=32, messages=MSGS) as s:
        again = s.get_final_message()
    assert again.content == live.content and again.usage == live.usage
    assert _hits(stub, "/v1/messages") == before + 3
    assert client.requests.flush()
    assert sum(r["cache_hit"] for r in _rows(db_url)) == 5


# -- async ----------------------------------------------------------------------------------
async def test_async_clients(aclient: llmbase.AsyncLLMBase, stub: StubServer) -> None:
    oai = llmbase.instrument(
        openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), aclient, cache=True
    )
    before = _hits(stub, "/chat/completions")
    a = await oai.chat.completions.create(model=MODEL, messages=MSGS, seed=21)
    b = await oai.chat.completions.create(model=MODEL, messages=MSGS, seed=21)
    assert isinstance(b, openai.types.chat.ChatCompletion) and a == b
    live = [
        c async for c in await oai.chat.completions.create(model=MODEL, messages=MSGS, seed=21, stream=True)
    ]
    replay = await oai.chat.completions.create(model=MODEL, messages=MSGS, seed=21, stream=True)
    assert isinstance(replay, openai.AsyncStream)
    assert [c async for c in replay] == live
    assert _hits(stub, "/chat/completions") == before + 2
    claude = llmbase.instrument(
        anthropic.AsyncAnthropic(base_url=stub.anthropic_base_url, api_key="k", max_retries=0),
        aclient,
        cache=True,
    )
    m_before = _hits(stub, "/v1/messages")
    m1 = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=MSGS)
    m2 = await claude.messages.create(model=CLAUDE, max_tokens=8, messages=MSGS)
    assert isinstance(m2, anthropic.types.Message) and m1 == m2
    async with claude.messages.stream(model=CLAUDE, max_tokens=8, messages=MSGS) as s:
        assert await s.get_final_text() == TEXT
    async with claude.messages.stream(model=CLAUDE, max_tokens=8, messages=MSGS) as s:
        assert await s.get_final_text() == TEXT
    assert _hits(stub, "/v1/messages") == m_before + 2
    st = await aclient.cache.stats()
    assert st.hits == 4 and st.entries == 4
    assert Decimal(st.cost_saved_usd) >= 0
    await oai.close()
    await claude.close()
