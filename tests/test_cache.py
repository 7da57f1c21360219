"""The response cache's SDK: keys, get/put, TTL, hit counts, get_or_call, invalidate,
clean, stats, semantic matches, tenant isolation and bad input (real PostgreSQL)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase.cache import MAX_ENTRY_BYTES, Semantic, request_key
from llmbase.errors import PayloadTooLarge, PermissionDenied, ValidationError

REQ = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2+2?"}], "temperature": 0}
ANSWER = {"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}}]}


def _expire_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE llmbase.cache_entries SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL"
        )


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM llmbase.cache_entries").fetchone()
        assert row is not None
        return int(row[0])


# -- keys -----------------------------------------------------------------------------------
def test_key_ignores_what_does_not_change_the_answer() -> None:
    base = request_key(REQ, provider="openai")
    same = request_key(
        {
            **REQ,
            "stream": True,
            "user": "u1",
            "metadata": {"a": 1},
            "timeout": 3,
            "extra_headers": {"x": "y"},
            "temperature": 0.0,
            "top_p": None,
        },
        provider="openai",
    )
    assert same.key_hash == base.key_hash
    # Key order does not matter either.
    assert request_key(dict(reversed(list(REQ.items()))), provider="openai").key_hash == base.key_hash


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.7},
        {"max_tokens": 5},
        {"model": "gpt-4o"},
        {"seed": 1},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"messages": [{"role": "user", "content": "What is 2+3?"}]},
        {"response_format": {"type": "json_object"}},
        {"stop": ["\n"]},
    ],
)
def test_key_changes_with_what_changes_the_answer(change: dict[str, Any]) -> None:
    assert request_key({**REQ, **change}).key_hash != request_key(REQ).key_hash


def test_key_covers_provider_and_type_and_params_hash_ignores_prompt() -> None:
    a = request_key(REQ, provider="openai")
    assert request_key(REQ, provider="azure").key_hash != a.key_hash
    assert request_key(REQ, provider="openai", request_type="completion").key_hash != a.key_hash
    other_prompt = request_key({**REQ, "messages": [{"role": "user", "content": "hi"}]}, provider="openai")
    assert other_prompt.params_hash == a.params_hash and other_prompt.key_hash != a.key_hash
    assert request_key({**REQ, "temperature": 1}, provider="openai").params_hash != a.params_hash


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ("not a mapping", "request"),
        ({**REQ, "temperature": math.nan}, "request"),
        ({**REQ, "temperature": math.inf}, "request"),
        ({**REQ, "x": object()}, "request"),
        ({**REQ, "model": "m\x00"}, "model"),
        ({**REQ, "model": "m" * 201}, "model"),
    ],
)
def test_key_bad_input(request_: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        request_key(request_)
    assert err.value.field == field


# -- get / put ------------------------------------------------------------------------------
def test_put_get_counts_hits(client: llmbase.LLMBase) -> None:
    assert client.cache.get(REQ, provider="openai") is None
    stored = client.cache.put(
        REQ, ANSWER, provider="openai", ttl=60, usage={"tokens_total": 17}, cost_usd=Decimal("0.0012")
    )
    assert stored.hit_count == 0 and stored.put_count == 1 and stored.expires_at is not None
    assert stored.model == "gpt-4o-mini" and stored.provider == "openai"
    hit = client.cache.get(REQ, provider="openai")
    assert hit is not None and hit.response == ANSWER and hit.id == stored.id
    assert hit.hit_count == 1 and hit.last_hit_at is not None
    assert hit.cost_usd == Decimal("0.0012") and hit.usage == {"tokens_total": 17}
    assert client.cache.get(REQ, provider="openai").hit_count == 2  # type: ignore[union-attr]
    # A peek does not count.
    assert client.cache.get(REQ, provider="openai", count_hit=False).hit_count == 2  # type: ignore[union-attr]
    # Another shape (a stream) or namespace is another entry.
    assert client.cache.get(REQ, provider="openai", stream=True) is None
    assert client.cache.get(REQ, provider="openai", namespace="v2") is None


def test_put_replaces_and_keeps_hit_count(client: llmbase.LLMBase) -> None:
    client.cache.put(REQ, ANSWER)
    client.cache.get(REQ)
    again = client.cache.put(REQ, {"new": True})
    assert again.put_count == 2 and again.hit_count == 1 and again.response == {"new": True}


def test_ttl_expiry_and_clean(client: llmbase.LLMBase, db_url: str) -> None:
    client.cache.put(REQ, ANSWER, ttl=timedelta(minutes=5))
    client.cache.put({**REQ, "seed": 2}, ANSWER)  # no TTL: never expires
    _expire_all(db_url)  # only rows with a TTL can be expired
    assert client.cache.get(REQ) is None
    assert client.cache.get({**REQ, "seed": 2}) is not None
    st = client.cache.stats()
    assert st.entries == 1 and st.expired == 1
    assert client.cache.clean() == 1
    assert client.cache.clean() == 0
    assert _count(db_url) == 1


def test_clean_sql_function_for_operators(client: llmbase.LLMBase, db_url: str) -> None:
    client.tenants.create("other")
    client.cache.put(REQ, ANSWER, ttl=1)
    client.tenant("other").cache.put(REQ, ANSWER, ttl=1)
    _expire_all(db_url)
    # Tenant scope cleans its own tenant only; the operator cleans every tenant.
    assert client.cache.clean() == 1
    assert client.admin().cache.clean(limit=10) == 1
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT llmbase.clean_expired_cache()").fetchone()
    assert row == (0,)


def test_stats_hit_rate_and_cost_saved(client: llmbase.LLMBase) -> None:
    empty = client.cache.stats()
    assert empty.entries == 0 and empty.hit_rate is None and empty.cost_saved_usd == 0
    client.cache.put(REQ, ANSWER, cost_usd=0.5)
    client.cache.put({**REQ, "seed": 1}, ANSWER)  # unknown cost saves 0
    for _ in range(3):
        client.cache.get(REQ)
    client.cache.get({**REQ, "seed": 1})
    st = client.cache.stats()
    assert st.entries == 2 and st.hits == 4 and st.stores == 2
    assert st.hit_rate == pytest.approx(4 / 6)
    assert st.cost_saved_usd == Decimal("1.5")
    assert st.bytes > 0 and st.last_hit_at is not None


def test_get_or_call(client: llmbase.LLMBase) -> None:
    calls: list[Any] = []

    def fn(req: Any) -> dict[str, Any]:
        calls.append(req)
        return {"answer": len(calls)}

    assert client.cache.get_or_call(REQ, fn, ttl=60) == {"answer": 1}
    assert client.cache.get_or_call(REQ, fn, ttl=60) == {"answer": 1}
    assert client.cache.get_or_call(REQ, fn, load=lambda v: v["answer"]) == 1
    assert len(calls) == 1

    def boom(req: Any) -> Any:
        raise RuntimeError("provider down")

    other = {**REQ, "seed": 9}
    with pytest.raises(RuntimeError):
        client.cache.get_or_call(other, boom)
    assert client.cache.get(other) is None  # a failure stores nothing


async def test_async_cache(aclient: llmbase.AsyncLLMBase) -> None:
    async def fn(req: Any) -> dict[str, Any]:
        return {"async": True}

    assert await aclient.cache.get_or_call(REQ, fn) == {"async": True}
    hit = await aclient.cache.get(REQ)
    assert hit is not None and hit.response == {"async": True} and hit.hit_count == 1
    st = await aclient.cache.stats()
    assert st.hits == 1 and st.stores == 1 and st.entries == 1
    assert await aclient.cache.invalidate(REQ) == 1
    assert await aclient.cache.clean() == 0


# -- invalidate -----------------------------------------------------------------------------
def test_invalidate(client: llmbase.LLMBase) -> None:
    client.cache.put(REQ, ANSWER, provider="openai")
    client.cache.put(REQ, ANSWER, provider="openai", stream=True)
    client.cache.put({**REQ, "model": "gpt-4o"}, ANSWER, provider="openai")
    client.cache.put(REQ, ANSWER, provider="openai", namespace="n1")
    assert client.cache.invalidate(REQ, provider="openai") == 3  # both shapes, all namespaces
    assert client.cache.invalidate(model="gpt-4o") == 1
    with pytest.raises(ValidationError):
        client.cache.invalidate()  # nothing said: refused rather than deleting all
    client.cache.put(REQ, ANSWER)
    assert client.cache.invalidate(everything=True) == 1


def test_user_scope_reads_and_stores_but_cannot_delete(client: llmbase.LLMBase, db_url: str) -> None:
    alice = client.user("alice")
    alice.cache.put(REQ, ANSWER)
    assert client.user("bob").cache.get(REQ) is not None  # shared by the tenant's users
    with pytest.raises(PermissionDenied):
        alice.cache.invalidate(everything=True)
    with pytest.raises(PermissionDenied):
        alice.cache.clean()
    assert _count(db_url) == 1


# -- tenants (required) ---------------------------------------------------------------------
def test_entry_of_tenant_a_is_never_served_to_tenant_b(client: llmbase.LLMBase, db_url: str) -> None:
    client.tenants.create("a")
    client.tenants.create("b")
    a, b = client.tenant("a"), client.tenant("b")
    a.cache.put(REQ, {"secret": "of a"}, provider="openai", cost_usd=1)
    assert b.cache.get(REQ, provider="openai") is None  # identical request, other tenant
    assert b.cache.get_or_call(REQ, lambda r: {"own": "b"}, provider="openai") == {"own": "b"}
    assert a.cache.get(REQ, provider="openai").response == {"secret": "of a"}  # type: ignore[union-attr]
    assert b.cache.get(REQ, provider="openai").response == {"own": "b"}  # type: ignore[union-attr]
    assert b.cache.invalidate(everything=True) == 1  # b's own only
    assert a.cache.stats().entries == 1 and b.cache.stats().entries == 0
    # Semantic matches stay within the tenant too.
    sem = Semantic(_Fixed([1.0, 0.0, 0.0]), threshold=0.9)
    a.cache.put({**REQ, "seed": 5}, {"a": 1}, semantic=sem)
    assert (
        b.cache.get({**REQ, "seed": 5, "messages": [{"role": "user", "content": "x"}]}, semantic=sem) is None
    )
    # And in SQL: the app role under tenant b's context sees none of a's rows.
    tid_b = b.scope().tenant_id
    with psycopg.connect(db_url) as conn:
        conn.execute("SET ROLE llmbase_app")
        conn.execute("SELECT llmbase.set_tenant_context(%s)", (tid_b,))
        row = conn.execute("SELECT count(*) FROM llmbase.cache_entries").fetchone()
        assert row == (0,)
        gone = conn.execute("UPDATE llmbase.cache_entries SET hit_count = 99").rowcount
        assert gone == 0


# -- semantic -------------------------------------------------------------------------------
class _Fixed:
    """An embedder mapping texts to fixed vectors (by substring), for exact similarities."""

    model = "fixed"
    dimension = 3

    def __init__(self, default: Sequence[float], table: dict[str, list[float]] | None = None) -> None:
        self.default = list(default)
        self.table = table or {}
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        out = []
        for t in texts:
            vec = next((v for k, v in self.table.items() if k in t), self.default)
            out.append(vec)
        return out


def test_semantic_match_needs_threshold_and_same_params(client: llmbase.LLMBase) -> None:
    emb = _Fixed(
        [0.0, 0.0, 1.0],
        {
            "capital of France": [1.0, 0.0, 0.0],
            "France's capital": [0.99, 0.14, 0.0],
            "weather": [0.0, 1.0, 0.0],
        },
    )
    sem = Semantic(emb, threshold=0.95)

    def req(text: str, **extra: Any) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}

    client.cache.put(req("What is the capital of France?"), {"a": "Paris"}, semantic=sem)
    hit = client.cache.get(req("Name France's capital"), semantic=sem)
    assert hit is not None and hit.response == {"a": "Paris"}
    assert hit.similarity is not None and 0.95 <= hit.similarity < 1.0
    assert client.cache.get(req("What's the weather?"), semantic=sem) is None  # not similar
    # Same prompt meaning, other parameters: no match.
    assert client.cache.get(req("Name France's capital", temperature=1), semantic=sem) is None
    assert client.cache.get(req("Name France's capital"), model="gpt-4o", semantic=sem) is None
    # Exact hits do not embed at all.
    before = emb.calls
    assert client.cache.get(req("What is the capital of France?"), semantic=sem) is not None
    assert emb.calls == before
    # A stricter threshold refuses the near match.
    assert client.cache.get(req("Name France's capital"), semantic=Semantic(emb, threshold=0.999)) is None


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": -1}, "ttl"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": math.nan}, "ttl"),
        ({"ttl": "1h"}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"cost_usd": -1}, "cost_usd"),
        ({"cost_usd": math.nan}, "cost_usd"),
        ({"cost_usd": "abc"}, "cost_usd"),
        ({"usage": {"tokens_total": -5}}, "usage"),
        ({"usage": [1, 2]}, "usage"),
        ({"namespace": "n\x00"}, "namespace"),
        ({"namespace": 5}, "namespace"),
        ({"namespace": "x" * 201}, "namespace"),
        ({"embedding": [math.nan, 1.0]}, "embedding"),
        ({"embedding": []}, "embedding"),
        ({"embedding": [0.0, 0.0]}, "embedding"),
        ({"embedding": "1,2"}, "embedding"),
        ({"embedding": [1.0] * 16001}, "embedding"),
    ],
)
def test_put_bad_input_stores_nothing(
    client: llmbase.LLMBase, db_url: str, kwargs: dict[str, Any], field: str
) -> None:
    client.cache.put({**REQ, "seed": 1}, ANSWER)
    with pytest.raises(ValidationError) as err:
        client.cache.put(REQ, ANSWER, **kwargs)
    assert err.value.field == field
    assert _count(db_url) == 1
    assert client.cache.get({**REQ, "seed": 1}).response == ANSWER  # type: ignore[union-attr]


def test_bad_lookups_and_sizes(client: llmbase.LLMBase, db_url: str) -> None:
    with pytest.raises(ValidationError) as err:
        client.cache.get(REQ, namespace="\x00")
    assert err.value.field == "namespace"
    with pytest.raises(ValidationError) as err:
        client.cache.get(REQ, semantic=object())  # type: ignore[arg-type]
    assert err.value.field == "semantic"
    with pytest.raises(ValidationError) as err:
        Semantic(_Fixed([1.0]), threshold=1.5)
    assert err.value.field == "threshold"
    with pytest.raises(ValidationError) as err:
        client.cache.clean(limit=0)
    assert err.value.field == "limit"
    with pytest.raises(PayloadTooLarge):
        client.cache.put(REQ, {"text": "x" * (MAX_ENTRY_BYTES + 1)})
    # NUL in a response is stored by the documented rule (U+FFFD), not an error.
    client.cache.put(REQ, {"text": "a\x00b"})
    assert client.cache.get(REQ).response == {"text": "a\ufffdb"}  # type: ignore[union-attr]
    assert _count(db_url) == 1


# -- CLI ------------------------------------------------------------------------------------
def test_cli_clean_and_stats(client: llmbase.LLMBase, db_url: str) -> None:
    import json

    from typer.testing import CliRunner

    from llmbase.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, [*args, "--database-url", db_url], catch_exceptions=False)

    client.tenants.create("acme")
    client.cache.put(REQ, ANSWER, ttl=1, cost_usd=2)
    client.cache.get(REQ)
    client.tenant("acme").cache.put(REQ, ANSWER, ttl=1)
    r = invoke("cache", "stats", "--json")
    assert r.exit_code == 0
    st = json.loads(r.output)
    assert st["entries"] == 2 and st["hits"] == 1 and st["hit_rate"] == pytest.approx(1 / 3)
    assert Decimal(st["cost_saved_usd"]) == 2
    r = invoke("cache", "stats", "--tenant", "acme")
    assert r.exit_code == 0 and "hit rate" in r.output and "0.0%" in r.output
    _expire_all(db_url)
    r = invoke("cache", "clean", "--tenant", "acme")
    assert r.exit_code == 0 and "deleted 1 expired cache entry" in r.output
    r = invoke("cache", "clean", "--json")
    assert json.loads(r.output) == {"deleted": 1}
    r = invoke("cache", "clean", "--limit", "0")
    assert r.exit_code != 0
    r = invoke("cache", "stats", "--tenant", "nope")
    assert r.exit_code == 1 and "error" in r.output
    for sub in ("clean", "stats"):
        assert runner.invoke(app, ["cache", sub, "--help"]).exit_code == 0
