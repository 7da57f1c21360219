"""Embedders: the local model (offline, 384 dims, normalised, meaningful) and OpenAI's API
through the official SDK against the local stub server, wired into a collection."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import openai
import pytest

import llmbase
from llmbase import ValidationError
from llmbase.documents.embedders import LOCAL_MODEL, Embedder, LocalEmbedder, OpenAIEmbedder
from stubs import StubServer, running_stub


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    e = LocalEmbedder()
    e.embed(["warm up"])  # the model loads once per process (a few seconds)
    return e


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


class Counting:
    """A real Embedder around another one, counting the texts it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts: list[str] = []

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return self.inner.embed(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)  # type: ignore[attr-defined,no-any-return]


# -- local ---------------------------------------------------------------------------------------
def test_local_embedder_gives_normalised_384_dim_vectors_that_mean_something(local: LocalEmbedder) -> None:
    assert isinstance(local, Embedder)
    assert (local.model, local.dimension) == (LOCAL_MODEL, 384)
    cat, kitten, invoice = local.embed(
        [
            "The cat sat on the mat.",
            "A kitten is sleeping on the rug.",
            "Please pay the attached invoice by Friday.",
        ]
    )
    for v in (cat, kitten, invoice):
        assert len(v) == 384 and all(isinstance(x, float) for x in v)
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4)
    assert cosine(cat, kitten) > cosine(cat, invoice) + 0.2
    assert cosine(cat, kitten) > cosine(kitten, invoice) + 0.2
    assert local.embed([]) == []


def test_local_embedder_counts_wordpiece_tokens_without_truncation(local: LocalEmbedder) -> None:
    short, long = local.count_tokens(["hello world", "word " * 600])
    assert short == 2
    assert long == 600  # not cut at the model's 256


async def test_local_embedder_from_async_code(local: LocalEmbedder) -> None:
    from llmbase.documents.embedders import aembed

    (v,) = await aembed(local, ["runs in a worker thread"])
    assert len(v) == 384


def test_local_embedder_in_a_collection(client: llmbase.LLMBase, db_url: str, local: LocalEmbedder) -> None:
    counting = Counting(local)
    client.collections.create("kb", local.dimension, embedding_model=local.model)
    kb = client.collection("kb", counting)
    docs = [
        {"id": "pets", "text": "Cats and dogs are popular pets. Kittens sleep most of the day."},
        {"id": "billing", "text": "Invoices are due within thirty days. Late payments incur a fee."},
        {"id": "travel", "text": "The train to the airport leaves every fifteen minutes."},
    ]
    r = kb.add(docs)
    assert (r.documents, r.chunks) == (3, 3)
    embedded = len(counting.texts)
    hits = kb.search("when do I have to pay my bill?", k=2)
    assert hits[0].external_id == "billing" and hits[0].score > hits[1].score
    again = kb.add(docs)
    assert again.skipped == 3 and len(counting.texts) == embedded + 1  # only the query was embedded
    import psycopg

    with psycopg.connect(db_url) as conn:
        tokens = conn.execute("SELECT token_count FROM llmbase.chunks ORDER BY token_count").fetchall()
    assert [t for (t,) in tokens] == sorted(local.count_tokens([d["text"] for d in docs]))


def test_embedder_must_match_the_collection(client: llmbase.LLMBase, local: LocalEmbedder) -> None:
    client.collections.create("small", 8)
    with pytest.raises(ValidationError) as e:
        client.collection("small", local).add(["text"])
    assert e.value.field == "embedder" and "384" in str(e.value)
    client.collections.create("other-model", 384, embedding_model="text-embedding-3-small")
    with pytest.raises(ValidationError, match="text-embedding-3-small"):
        client.collection("other-model", local).search("query")
    with pytest.raises(ValidationError, match="no embedder"):
        client.collection("small").search("a text query needs an embedder")


# -- OpenAI --------------------------------------------------------------------------------------
@pytest.fixture
def oai(stub: StubServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    yield c
    c.close()


def test_openai_embedder_through_the_sdk(stub: StubServer, oai: openai.OpenAI) -> None:
    e = OpenAIEmbedder(oai, "text-embedding-3-small", dimensions=8, batch_size=2)
    assert (e.model, e.dimension) == ("text-embedding-3-small", 8)
    before = len(stub.received)
    vectors = e.embed(["a", "b", "c", "d", "e"])
    assert len(vectors) == 5 and all(len(v) == 8 for v in vectors)
    sent = [r for r in stub.received[before:] if r.path.endswith("/embeddings")]
    assert [r.body["input"] for r in sent] == [["a", "b"], ["c", "d"], ["e"]]
    assert all(r.body["model"] == "text-embedding-3-small" and r.body["dimensions"] == 8 for r in sent)
    full = OpenAIEmbedder(oai, "text-embedding-3-large")
    assert full.dimension == 3072  # the model's size: no `dimensions` sent
    full_vectors = OpenAIEmbedder(oai, "custom-model", dimensions=8)
    full_vectors.embed(["x"])
    assert stub.last("/embeddings").body["dimensions"] == 8
    with pytest.raises(ValidationError) as err:
        OpenAIEmbedder(oai, "custom-model")
    assert err.value.field == "dimensions"


async def test_openai_embedder_async_client(stub: StubServer) -> None:
    c = openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    try:
        e = OpenAIEmbedder(c, "text-embedding-3-small", dimensions=8)
        vectors = await e.aembed(["a", "b"])
        assert len(vectors) == 2 and len(vectors[0]) == 8
        with pytest.raises(llmbase.errors.ConfigurationError):
            e.embed(["sync use of an async client"])
    finally:
        await c.close()


def test_instrumented_client_logs_the_embedding_calls(stub: StubServer) -> None:
    records: list[dict[str, Any]] = []
    c = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0),
        log=lambda **fields: records.append(fields),
    )
    try:
        OpenAIEmbedder(c, "text-embedding-3-small", dimensions=8).embed(["a", "b", "c"])
    finally:
        c.close()
    assert [r["request_type"] for r in records] == ["embedding"]
    assert records[0]["model"] == "text-embedding-3-small"


def test_openai_embedder_in_a_collection(client: llmbase.LLMBase, oai: openai.OpenAI) -> None:
    e = OpenAIEmbedder(oai, "text-embedding-3-small", dimensions=8)
    client.collections.create("api", e.dimension, embedding_model=e.model)
    h = client.collection("api", e)
    r = h.add([{"id": "1", "text": "first"}, {"id": "2", "text": "second"}])
    assert (r.documents, r.chunks) == (2, 2)
    hits = h.search("anything", k=5)
    assert {x.external_id for x in hits} == {"1", "2"}  # the stub's vectors are all alike
    assert math.isclose(hits[0].score, 1.0, rel_tol=1e-5)


async def test_async_collection_uses_aembed(aclient: llmbase.AsyncLLMBase, stub: StubServer) -> None:
    c = openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    try:
        e = OpenAIEmbedder(c, "text-embedding-3-small", dimensions=8)
        await aclient.collections.create("aapi", 8)
        h = aclient.collection("aapi", e)
        r = await h.add(["one text", "another text"])
        assert r.chunks == 2
        hits = await h.search("query", k=1)
        assert len(hits) == 1
    finally:
        await c.close()
