"""Collections and the collection handle: create / get / list / drop / stats / reindex,
collections of several dimensions side by side, the retrieval record a search builds, and
the sync and async twins."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase import ConflictError, NotFound, PermissionDenied, TenantMissing, ValidationError
from llmbase.documents import _pipeline
from llmbase.documents.rows import ChunkInput, DocumentInput


def raw(db_url: str, q: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(q, params).fetchall()


def doc(ext: str, *chunks: tuple[str, list[float]], **kw: Any) -> DocumentInput:
    return DocumentInput(
        chunks=[ChunkInput(content=t, embedding=v) for t, v in chunks], external_id=ext, **kw
    )


# -- create --------------------------------------------------------------------------------------
def test_create_checks_its_input_first(client: llmbase.LLMBase, db_url: str) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": "", "dimension": 3}, "name"),
        ({"name": "has space", "dimension": 3}, "name"),
        ({"name": "x" * 101, "dimension": 3}, "name"),
        ({"name": "c", "dimension": 0}, "dimension"),
        ({"name": "c", "dimension": 16001}, "dimension"),
        ({"name": "c", "dimension": 2001}, "dimension"),  # vector indexes stop at 2,000
        ({"name": "c", "dimension": 3, "distance": "dot"}, "distance"),
        ({"name": "c", "dimension": 3, "storage": "float"}, "storage"),
        ({"name": "c", "dimension": 3, "index": "diskann"}, "index"),
        ({"name": "c", "dimension": 3, "m": 1}, "m"),
        ({"name": "c", "dimension": 3, "m": 40, "ef_construction": 64}, "ef_construction"),
        ({"name": "c", "dimension": 3, "lists": 0}, "lists"),
        ({"name": "c", "dimension": 3, "language": "klingon"}, "language"),
        ({"name": "c", "dimension": 3, "language": "english'; DROP TABLE x; --"}, "language"),
        ({"name": "c", "dimension": 3, "metadata": [1]}, "metadata"),
    ]
    for kwargs, field in bad:
        with pytest.raises(ValidationError) as e:
            client.collections.create(**kwargs)
        assert e.value.field == field, (kwargs, e.value)
    assert raw(db_url, "SELECT count(*) FROM llmbase.collections") == [(0,)]
    # the limits are the index's: halfvec indexes reach 4,000 dims, unindexed collections 16,000
    assert client.collections.create("half", 4000, storage="halfvec").dimension == 4000
    assert client.collections.create("wide", 16000, index="none").index_type == "none"


def test_create_options_and_conflicts(client: llmbase.LLMBase, db_url: str) -> None:
    c = client.collections.create(
        "fr-docs",
        3,
        distance="l2",
        index="ivfflat",
        lists=10,
        language="french",
        embedding_model="my-model",
        metadata={"team": "x"},
    )
    assert (c.distance, c.index_type, c.ivfflat_lists, c.language, c.embedding_model, c.metadata) == (
        "l2",
        "ivfflat",
        10,
        "french",
        "my-model",
        {"team": "x"},
    )
    with pytest.raises(ConflictError, match="fr-docs"):
        client.collections.create("fr-docs", 3)
    with pytest.raises(PermissionDenied):
        client.user("alice").collections.create("mine", 3)
    with pytest.raises(TenantMissing):
        client.admin().collections.create("ops", 3)
    idx = raw(db_url, "SELECT indexdef FROM pg_indexes WHERE indexname = %s", c.partition_name + "_vec")
    assert "USING ivfflat (((embedding)::vector(3)))" in idx[0][0] and "lists='10'" in idx[0][0]


def test_collections_of_different_dimensions_side_by_side(client: llmbase.LLMBase, db_url: str) -> None:
    client.collections.create("three", 3)
    client.collections.create("five", 5, storage="halfvec")
    client.collection("three").add([doc("a", ("three dims", [1, 0, 0]))])
    client.collection("five").add([doc("a", ("five dims", [0, 0, 0, 0, 1]))])
    assert client.collection("three").search(vector=[1, 0, 0])[0].content == "three dims"
    assert client.collection("five").search(vector=[0, 0, 0, 0, 1])[0].content == "five dims"
    with pytest.raises(ValidationError):
        client.collection("three").add([doc("b", ("wrong", [1, 0, 0, 0, 0]))])
    assert [c.name for c in client.collections.list()] == ["five", "three"]


# -- get / drop / isolation ------------------------------------------------------------------------
def test_get_by_name_or_id_and_tenant_isolation(client: llmbase.LLMBase) -> None:
    mine = client.collections.create("shared-name", 3)
    assert client.collections.get("shared-name") == mine
    assert client.collections.get(mine.id) == mine
    assert client.collections.get(str(mine.id)) == mine
    other = client.tenants.create("other")
    theirs = client.tenant(other.id)
    with pytest.raises(NotFound):
        theirs.collections.get("shared-name")
    with pytest.raises(NotFound):
        theirs.collections.get(mine.id)
    t = theirs.collections.create("shared-name", 3)
    assert t.id != mine.id and theirs.collections.get("shared-name").id == t.id
    assert client.collections.get("shared-name").id == mine.id
    with pytest.raises(NotFound):
        client.collections.get("missing")


def test_drop_removes_documents_chunks_and_partition(client: llmbase.LLMBase, db_url: str) -> None:
    c = client.collections.create("gone", 3)
    client.collection("gone").add([doc("a", ("x", [1, 0, 0]))])
    with pytest.raises(PermissionDenied):
        client.user("bob").collections.drop("gone")
    assert client.collections.drop("gone") is True
    assert raw(db_url, "SELECT to_regclass(%s)", "llmbase." + c.partition_name) == [(None,)]
    assert raw(db_url, "SELECT count(*) FROM llmbase.documents") == [(0,)]
    with pytest.raises(NotFound):
        client.collections.drop("gone")


# -- stats and reindex ---------------------------------------------------------------------------
def test_stats_count_what_the_scope_sees(client: llmbase.LLMBase) -> None:
    client.collections.create("s", 3)
    client.collections.create("empty", 3, index="none")
    client.collection("s").add(
        [doc("shared", ("a", [1, 0, 0]), ("b", [0, 1, 0])), {"text": "no vector", "id": "t"}]
    )
    client.user("ann").collection("s").add([doc("private", ("c", [0, 0, 1]))])
    stats = {s.name: s for s in client.collections.stats()}
    s = stats["s"]
    assert (s.documents, s.chunks, s.embedded_chunks) == (3, 4, 3)
    assert (
        s.table_bytes > 0 and s.vector_index_bytes > 0 and s.vector_index and s.vector_index.endswith("_vec")
    )
    assert (stats["empty"].documents, stats["empty"].vector_index, stats["empty"].vector_index_bytes) == (
        0,
        None,
        0,
    )
    (bob_view,) = client.user("bob").collections.stats("s")
    assert (bob_view.documents, bob_view.chunks) == (2, 3)  # the shared documents only
    assert client.collection("s").stats() == s


def test_reindex_rebuilds_with_new_parameters(client: llmbase.LLMBase, db_url: str) -> None:
    c = client.collections.create("r", 3)
    client.collection("r").add([doc(f"d{i}", (f"text {i}", [1, i, 0])) for i in range(50)])
    result = client.collections.reindex("r", m=8, ef_construction=40, maintenance_work_mem="128MB", workers=0)
    assert (result.collection, result.chunks, result.maintenance_work_mem, result.workers) == (
        "r",
        50,
        "128MB",
        0,
    )
    assert result.index == c.partition_name + "_vec" and result.index_bytes > 0 and result.seconds >= 0
    again = client.collections.get("r")
    assert (again.hnsw_m, again.hnsw_ef_construction) == (8, 40)
    opts = raw(db_url, "SELECT reloptions FROM pg_class WHERE relname = %s", result.index)
    assert set(opts[0][0]) == {"m=8", "ef_construction=40"}
    assert client.collection("r").search(vector=[1, 3, 0], k=1)[0].content == "text 3"
    with pytest.raises(ValidationError) as e:
        client.collections.reindex("r", m=30)  # ef_construction 40 < 2 * 30
    assert e.value.field == "ef_construction"
    with pytest.raises(ValidationError):
        client.collections.reindex("r", maintenance_work_mem="lots")
    with pytest.raises(PermissionDenied):
        client.tenant("default").collections.reindex("r")  # not the root client: no operator scope
    with pytest.raises(NotFound):
        client.collections.reindex("nope")
    admin = client.admin().collections.reindex(c.id)
    assert admin.index == result.index


# -- the handle ----------------------------------------------------------------------------------
def test_handle_reads_documents_of_its_collection_only(client: llmbase.LLMBase) -> None:
    client.collections.create("a", 3)
    client.collections.create("b", 3)
    ra = client.collection("a").add([doc("x", ("in a", [1, 0, 0]), ("second", [0, 1, 0]), title="A")])
    rb = client.collection("b").add([doc("x", ("in b", [1, 0, 0]))])
    (da,) = ra.document_ids
    got = client.collection("a").get(da)
    assert (got.title, got.chunk_count, got.external_id) == ("A", 2, "x")
    assert [ch.content for ch in client.collection("a").chunks(da)] == ["in a", "second"]
    with pytest.raises(NotFound):
        client.collection("a").get(rb.document_ids[0])
    assert client.collection("a").chunks(rb.document_ids[0]) == []
    page = client.collection("b").documents(limit=10)
    assert [d.id for d in page] == list(rb.document_ids)
    with pytest.raises(NotFound):
        client.collection("missing").add([doc("x", ("t", [1, 0, 0]))])


def test_search_builds_the_retrieval_record(client: llmbase.LLMBase) -> None:
    c = client.collections.create("log", 3)
    r = client.collection("log").add([doc("a", ("alpha", [1, 0, 0])), doc("b", ("beta", [0, 1, 0]))])
    conv, msg, req = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    steps = _pipeline.search(
        c,
        None,
        embedder=None,
        vector=[1, 0.2, 0],
        k=2,
        filter={"missing": {"$exists": False}},
        conversation=conv,
        message=str(msg),
        request=req,
    )
    records: list[tuple[str, dict[str, Any]]] = []
    value: Any = None
    try:
        while True:
            step = steps.send(value)
            if isinstance(step, _pipeline.Call):
                value = client._core.run(step.fn, *step.args, **step.kwargs)
            else:
                assert isinstance(step, _pipeline.Enqueue)
                records.append((step.kind, step.record))
                value = None
    except StopIteration as stop:
        hits = stop.value
    ((kind, rec),) = records
    assert kind == "retrieval"
    assert set(rec) == {
        "id", "collection_id", "mode", "method", "query", "filter", "k", "ef_search", "threshold",
        "conversation_id", "message_id", "request_id", "latency_ms", "results",
    }  # fmt: skip
    assert (rec["collection_id"], rec["mode"], rec["k"], rec["query"]) == (c.id, "vector", 2, None)
    assert (rec["conversation_id"], rec["message_id"], rec["request_id"]) == (conv, msg, req)
    assert rec["method"] in ("index", "exact") and rec["latency_ms"] >= 0
    assert rec["filter"] == {"missing": {"$exists": False}}
    assert [x["document_id"] for x in rec["results"]] == [r.document_ids[0], r.document_ids[1]]
    assert [x["rank"] for x in rec["results"]] == [1, 2] == [h.rank for h in hits]
    assert rec["results"][0]["score"] == hits[0].score and rec["results"][0]["distance"] == hits[0].distance
    with pytest.raises(ValidationError) as e:
        client.collection("log").search(vector=[1, 0, 0], conversation="not-an-id")
    assert e.value.field == "conversation"
    with pytest.raises(ValidationError):
        client.collection("log").search(vector=[1, 0, 0], mode="fuzzy")  # type: ignore[arg-type]
    assert client.collection("log", log=False).search(vector=[0, 1, 0], k=1)[0].content == "beta"


async def test_async_twins(aclient: llmbase.AsyncLLMBase) -> None:
    c = await aclient.collections.create("tw", 3)
    assert await aclient.collections.get("tw") == c
    assert [x.name for x in await aclient.collections.list()] == ["tw"]
    h = aclient.collection("tw")
    assert await h.info() == c
    r = await h.add([doc("a", ("x", [1, 0, 0]))])
    assert (await h.get(r.document_ids[0])).external_id == "a"
    assert [ch.content for ch in await h.chunks(r.document_ids[0])] == ["x"]
    assert len(await h.documents()) == 1
    assert (await h.search(vector=[1, 0, 0]))[0].content == "x"
    assert (await h.stats()).chunks == 1
    assert (await aclient.collections.reindex("tw")).chunks == 1
    assert await aclient.collections.drop("tw") is True


def test_sync_and_async_handles_offer_the_same_operations() -> None:
    from llmbase.documents import store

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    assert public(store.CollectionHandle) == public(store.AsyncCollectionHandle)
    assert public(store.Collections) == public(store.AsyncCollections)
    ops = {k: v.fn for k, v in vars(store.Collections).items() if hasattr(v, "fn")}
    aops = {k: v.fn for k, v in vars(store.AsyncCollections).items() if hasattr(v, "fn")}
    assert ops and ops == aops


def test_the_guide_quickstart_runs(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/documents.md's first example runs and prints what its comments say."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "documents.md").read_text()
    code = re.findall(r"```python\n(.*?)```", guide, flags=re.S)[0]
    monkeypatch.setenv("LLMBASE_DATABASE_URL", db_url)
    exec(compile(code, "docs/documents.md", "exec"), {})
    expected = [m.strip() for m in re.findall(r"^print\(.*\)\s+# (.*)$", code, flags=re.M)]
    assert capsys.readouterr().out.splitlines() == expected


def test_searches_land_in_the_retrieval_log_with_their_sources(client: llmbase.LLMBase, db_url: str) -> None:
    """The writer stores each search (retrievals) and what it returned (retrieval_results);
    message_sources shows an answer's sources; replays store nothing twice; nothing is
    dead-lettered."""
    client.collections.create("src", 3)
    col = client.collection("src")
    r = col.add([doc("a", ("alpha", [1, 0, 0]), title="A"), doc("b", ("beta", [0, 1, 0]), title="B")])
    conv = client.conversations.create(title="t")
    msg = client.conversations.add_message(conv.id, role="assistant", content="answer")
    hits = col.search(vector=[1, 0.1, 0], k=2, conversation=conv.id, message=msg.id)
    col.search(vector=[0, 1, 0], k=1)
    assert client.requests.flush(30)
    rows = raw(
        db_url,
        "SELECT mode, k, result_count, message_id FROM llmbase.retrievals ORDER BY created_at",
    )
    assert rows == [("vector", 2, 2, msg.id), ("vector", 1, 1, None)]
    sources = raw(
        db_url,
        "SELECT rank, document_id, title FROM llmbase.message_sources WHERE message_id = %s ORDER BY rank",
        msg.id,
    )
    assert sources == [(1, r.document_ids[0], "A"), (2, r.document_ids[1], "B")]
    assert [h.document_id for h in hits] == [s[1] for s in sources]
    assert raw(db_url, "SELECT count(*) FROM llmbase.ingest_dead_letters") == [(0,)]
    assert client.requests.stats()["dead_lettered"] == 0


def test_bulk_add_builds_the_vector_index_once(client: llmbase.LLMBase, db_url: str) -> None:
    """A load of >= 10,000 chunks into a smaller collection drops the vector index and builds
    it once at the end; small loads keep it; a missing index (an interrupted load) is rebuilt
    by the next add()."""
    c = client.collections.create("bulk", 3)
    col = client.collection("bulk")
    idx = f"{c.partition_name}_vec"

    def has_index() -> bool:
        return raw(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname = %s", idx) == [(1,)]

    docs = [
        doc(f"d{i}", *[(f"text {i} {j}", [1.0, (i % 97) / 97, j / 10]) for j in range(10)])
        for i in range(1_000)
    ]
    r = col.add(docs, batch_size=250)
    assert (r.documents, r.chunks) == (1_000, 10_000)
    assert has_index()
    assert raw(db_url, "SELECT count(*) FROM llmbase.chunks WHERE collection_id = %s", c.id) == [(10_000,)]
    hits = col.search(vector=[1.0, 5 / 97, 0.3], k=3)
    assert len(hits) == 3  # the 3 nearest: documents with i % 97 == 5, chunk 3 (cosine 1.0)
    assert all(int(h.external_id[1:]) % 97 == 5 and h.position == 3 for h in hits if h.external_id)
    assert all(abs(h.score - 1.0) < 1e-6 for h in hits)
    # Interrupted load: the index is missing; the next (small) add rebuilds it.
    with psycopg.connect(db_url) as conn:
        conn.execute(f'DROP INDEX llmbase."{idx}"')
    assert not has_index()
    col.add([doc("late", ("late text", [0.0, 1.0, 0.0]))])
    assert has_index()


def test_one_batch_of_many_chunks(client: llmbase.LLMBase, db_url: str) -> None:
    """A single write of 6,000 384-d chunks (about 10 MB, more than temp_buffers) goes through
    the temporary table in one transaction (regression: PostgreSQL 18's read-ahead pinned
    every local buffer: "no empty local buffer available")."""
    client.collections.create("big", 384, index="none")
    vec = [0.05] * 384
    big = doc("big", *[(f"chunk {j}", [*vec[:-1], j / 6000]) for j in range(6_000)])
    r = client.collection("big").add([big])
    assert (r.documents, r.chunks) == (1, 6_000)
    n = raw(
        db_url,
        "SELECT count(*) FROM llmbase.chunks c JOIN llmbase.collections k ON k.id = c.collection_id WHERE k.name = 'big'",
    )
    assert n == [(6_000,)]
