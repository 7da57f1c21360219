"""Writing documents: vectors checked before the database, upsert by external id or content
hash (unchanged documents write nothing), the NUL rule, binary COPY, ownership, delete."""

from __future__ import annotations

import math
import struct
import threading
import uuid
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase import NotFound, PermissionDenied, TenantMissing, ValidationError
from llmbase.db import Scope
from llmbase.documents.rows import ChunkInput, Collection, DocumentInput
from llmbase.stores._plan import Query, arun, run


def raw(db_url: str, q: str, *params: Any) -> list[tuple[Any, ...]]:
    """As the superuser (no RLS): what is really stored."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(q, params).fetchall()


def counts(db_url: str) -> tuple[int, int]:
    docs = raw(db_url, "SELECT count(*) FROM llmbase.documents")[0][0]
    chunks = raw(db_url, "SELECT count(*) FROM llmbase.chunks")[0][0]
    return docs, chunks


def f4(xs: list[float]) -> list[float]:
    """Values as float4 holds them."""
    return list(struct.unpack(f"{len(xs)}f", struct.pack(f"{len(xs)}f", *xs)))


def vec(*xs: float) -> list[float]:
    return list(xs)


def doc(ext: str | None, *texts_and_vectors: tuple[str, list[float]], **kw: Any) -> DocumentInput:
    return DocumentInput(
        chunks=[ChunkInput(content=t, embedding=v) for t, v in texts_and_vectors], external_id=ext, **kw
    )


@pytest.fixture
def col(client: llmbase.LLMBase) -> Collection:
    return client.collections.create("notes", 4)


GOOD = doc("good", ("fine", vec(1, 0, 0, 0)))


# -- vectors are checked before the database ---------------------------------------------------
BAD_VECTORS: list[tuple[Any, str]] = [
    ([1.0, 2.0, 3.0], "has 3 dimensions, the collection has 4"),
    ([1.0, math.nan, 0.0, 0.0], "NaN"),
    ([1.0, math.inf, 0.0, 0.0], "Infinity"),
    ([-math.inf, 0.0, 0.0, 1.0], "Infinity"),
    ([1e39, 0.0, 0.0, 1.0], "float4"),
    ([], "is empty"),
    (["1", 0, 0, 0], "numbers"),
    ([None, 0, 0, 0], "numbers"),
    ([True, 0, 0, 0], "numbers"),
    ("1,2,3,4", "sequence of numbers"),
    ([[1], [2], [3], [4]], "numbers"),
    ([0.0, 0.0, 0.0, 0.0], "zero vector"),  # cosine collection
]


def test_bad_vectors_are_rejected_before_the_database_and_nothing_is_written(
    client: llmbase.LLMBase, db_url: str, col: Collection
) -> None:
    for bad, message in BAD_VECTORS:
        docs = [GOOD, doc("second", ("ok", vec(0, 1, 0, 0)), ("bad", bad))]
        with pytest.raises(ValidationError) as e:
            client.collection("notes").add(docs)
        assert e.value.field == "documents[1].chunks[1].embedding", bad
        assert message in str(e.value), (bad, str(e.value))
        assert counts(db_url) == (0, 0)  # not even the good document of the same call
    numpy = pytest.importorskip("numpy")
    for bad in (
        numpy.array([1.0, numpy.nan, 0, 0]),
        numpy.array([[1.0, 2, 3, 4]]),
        numpy.array(["a", "b", "c", "d"]),
    ):
        with pytest.raises(ValidationError):
            client.collection("notes").add([doc("np", ("x", bad))])
    ok = client.collection("notes").add([doc("np", ("x", numpy.array([1, 2, 3, 4], dtype=numpy.float32)))])
    assert ok.chunks == 1


def test_the_vector_check_needs_no_database(col: Collection) -> None:
    """A client whose server does not exist: the error still comes, so it came first."""
    dead = llmbase.connect("postgresql://nobody@127.0.0.1:9/none?connect_timeout=1", migrate=False)
    try:
        handle = dead.collection(col)  # a Collection row: no lookup needed
        with pytest.raises(ValidationError, match="NaN"):
            handle.add([doc("x", ("t", vec(math.nan, 0, 0, 0)))])
        with pytest.raises(ValidationError, match="5 dimensions"):
            handle.search(vector=[1, 2, 3, 4, 5])
    finally:
        dead.close()


def test_bad_documents_are_specific_errors(client: llmbase.LLMBase, db_url: str, col: Collection) -> None:
    h = client.collection("notes")
    cases: list[tuple[Any, str]] = [
        ({"text": "   \n "}, "documents[0].content"),
        ({"chunks": []}, "documents[0].chunks"),
        ({"text": "a", "chunks": ["b"]}, "documents[0]"),
        ({"body": "x"}, "documents[0]"),
        ({"text": "a", "metadata": ["not", "an", "object"]}, "documents[0].metadata"),
        ({"text": "a", "title": "t" * 2001}, "documents[0].title"),
        ({"text": "a", "is_public": "yes"}, "documents[0].is_public"),
        ({"chunks": [{"content": "a", "token_count": -1}]}, "documents[0].chunks[0].token_count"),
        (42, "documents[0]"),
    ]
    for bad, field in cases:
        with pytest.raises(ValidationError) as e:
            h.add([bad])
        assert e.value.field == field, (bad, e.value)
    with pytest.raises(ValidationError) as e:
        h.add([GOOD], batch_size=0)
    assert e.value.field == "batch_size"
    with pytest.raises(ValidationError) as e:
        h.add(["some text"], chunk_size=10, overlap=10)
    assert e.value.field == "overlap"
    assert counts(db_url) == (0, 0)


# -- upsert ------------------------------------------------------------------------------------
def test_upsert_by_external_id_skips_unchanged_and_replaces_changed(
    client: llmbase.LLMBase, db_url: str, col: Collection
) -> None:
    h = client.collection("notes")
    first = h.add([doc("a", ("one", vec(1, 0, 0, 0)), ("two", vec(0, 1, 0, 0)), metadata={"v": 1})])
    assert (first.documents, first.chunks, first.skipped) == (1, 2, 0)
    (doc_id,) = first.document_ids
    before = raw(db_url, "SELECT xmin::text, id FROM llmbase.chunks ORDER BY position")
    doc_xmin = raw(db_url, "SELECT xmin::text FROM llmbase.documents")

    again = h.add([doc("a", ("one", vec(1, 0, 0, 0)), ("two", vec(0, 1, 0, 0)), metadata={"v": 1})])
    assert (again.documents, again.chunks, again.skipped) == (0, 0, 1)
    assert again.document_ids == (doc_id,)
    assert raw(db_url, "SELECT xmin::text, id FROM llmbase.chunks ORDER BY position") == before
    assert raw(db_url, "SELECT xmin::text FROM llmbase.documents") == doc_xmin  # not even an UPDATE

    changed = h.add([doc("a", ("one, edited", vec(1, 1, 0, 0)), metadata={"v": 1})])
    assert (changed.documents, changed.chunks, changed.skipped) == (1, 1, 0)
    assert changed.document_ids == (doc_id,)  # the same document, its chunks replaced
    rows = raw(db_url, "SELECT content, metadata FROM llmbase.chunks WHERE document_id = %s", doc_id)
    assert rows == [("one, edited", {"v": 1})]

    meta_only = h.add([doc("a", ("one, edited", vec(1, 1, 0, 0)), metadata={"v": 2})])
    assert meta_only.documents == 1
    assert raw(db_url, "SELECT metadata FROM llmbase.chunks") == [({"v": 2},)]
    stored = raw(db_url, "SELECT chunk_count, metadata, content_hash FROM llmbase.documents")
    assert stored[0][:2] == (1, {"v": 2}) and len(stored[0][2]) == 64


def test_upsert_by_content_hash_per_owner(client: llmbase.LLMBase, db_url: str, col: Collection) -> None:
    shared = client.collection("notes")
    r1 = shared.add([doc(None, ("same text", vec(1, 0, 0, 0)))])
    r2 = shared.add([doc(None, ("same text", vec(1, 0, 0, 0)))])
    assert r1.documents == 1 and r2.skipped == 1 and r1.document_ids == r2.document_ids
    alice = client.user("alice").collection("notes")
    r3 = alice.add([doc(None, ("same text", vec(1, 0, 0, 0)))])
    assert r3.documents == 1 and r3.document_ids != r1.document_ids  # another owner, another document
    owners = raw(db_url, "SELECT user_id IS NULL FROM llmbase.documents ORDER BY user_id NULLS FIRST")
    assert owners == [(True,), (False,)]


def test_duplicate_keys_in_one_call_keep_the_last(
    client: llmbase.LLMBase, db_url: str, col: Collection
) -> None:
    r = client.collection("notes").add(
        [
            doc("k", ("first", vec(1, 0, 0, 0))),
            doc("k", ("second", vec(0, 1, 0, 0))),
            doc("other", ("x", vec(0, 0, 1, 0))),
        ]
    )
    assert (r.documents, r.skipped) == (2, 1)
    assert r.document_ids[0] == r.document_ids[1] != r.document_ids[2]
    assert raw(db_url, "SELECT content FROM llmbase.chunks ORDER BY content") == [("second",), ("x",)]


def test_text_documents_are_chunked_without_an_embedder(
    client: llmbase.LLMBase, db_url: str, col: Collection
) -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 30 for i in range(6))
    r = client.collection("notes").add(
        [{"text": text, "id": "long", "title": "Long", "metadata": {"lang": "en"}}], chunk_size=50, overlap=5
    )
    assert r.documents == 1 and r.chunks >= 4
    rows = raw(
        db_url,
        "SELECT position, content, token_count, metadata, embedding IS NULL FROM llmbase.chunks ORDER BY position",
    )
    assert [p for p, *_ in rows] == list(range(len(rows)))
    assert all(meta == {"lang": "en"} and no_vec for *_, meta, no_vec in rows)
    assert all(0 < n <= 50 for _, _, n, _, _ in rows)
    assert rows[0][1].startswith("Paragraph 0.")
    (tokens, chunk_count) = raw(db_url, "SELECT token_count, chunk_count FROM llmbase.documents")[0]
    assert chunk_count == len(rows) and tokens == sum(n for _, _, n, _, _ in rows)
    again = client.collection("notes").add(
        [{"text": text, "id": "long", "title": "Long", "metadata": {"lang": "en"}}]
    )
    assert again.skipped == 1 and again.chunks == 0


def test_nul_bytes_follow_the_documented_rule(client: llmbase.LLMBase, db_url: str, col: Collection) -> None:
    h = client.collection("notes")
    nul = DocumentInput(
        content="before\x00after and a lone \ud800 surrogate",
        external_id="id\x00",
        title="ti\x00tle",
        source="s\x00",
        metadata={"k\x00": "v\x00"},
    )
    r = h.add([nul])
    assert r.documents == 1
    stored = raw(db_url, "SELECT external_id, title, source, metadata FROM llmbase.documents")
    assert stored == [("id\ufffd", "ti\ufffdtle", "s\ufffd", {"k\ufffd": "v\ufffd"})]
    assert raw(db_url, "SELECT content FROM llmbase.chunks") == [
        ("before\ufffdafter and a lone \ufffd surrogate",)
    ]
    assert h.add([nul]).skipped == 1  # the same input is the same document
    chunked = h.add([doc("c", ("x\x00y", vec(1, 0, 0, 0)))])
    assert raw(
        db_url, "SELECT content FROM llmbase.chunks WHERE document_id = %s", chunked.document_ids[0]
    ) == [("x\ufffdy",)]


# -- bulk path ---------------------------------------------------------------------------------
def test_bulk_copy_stores_vectors_exactly(client: llmbase.LLMBase, db_url: str) -> None:
    client.collections.create("bulk", 8, index="none")
    client.collections.create("half", 8, storage="halfvec", distance="l2")
    docs = [
        doc(
            f"d{i}",
            *[
                (f"doc {i} chunk {j} ünï", [float(i), j + 0.1, -1.5, 1e-3, 2.0, 3.0, 4.0, 5.0])
                for j in range(10)
            ],
        )
        for i in range(1, 301)
    ]
    r = client.collection("bulk").add(docs, batch_size=120)
    assert (r.documents, r.chunks) == (300, 3000)
    assert len(set(r.document_ids)) == 300
    got = raw(
        db_url,
        "SELECT embedding::real[] FROM llmbase.chunks WHERE content = %s",
        "doc 7 chunk 3 ünï",
    )[0][0]
    assert f4(got) == f4([7.0, 3.1, -1.5, 1e-3, 2.0, 3.0, 4.0, 5.0])
    h = client.collection("half").add(docs[:5])
    assert h.chunks == 50
    half = raw(
        db_url,
        "SELECT embedding IS NULL, embedding_half::real[] FROM llmbase.chunks WHERE content = 'doc 2 chunk 0 ünï'"
        " AND embedding_half IS NOT NULL",
    )
    assert half[0][0] is True and f4(half[0][1][:3]) == f4([2.0, 0.0999755859375, -1.5])  # half precision
    with pytest.raises(ValidationError, match="halfvec"):
        client.collection("half").add([doc("big", ("x", [70000.0, 0, 0, 0, 0, 0, 0, 0]))])


def test_plan_runner_copies_rows_sync_and_async(client: llmbase.LLMBase) -> None:
    scope = client.scope()

    def plan() -> Any:
        yield Query("CREATE TEMP TABLE t_copy (a int4, b text, c real[]) ON COMMIT DROP", fetch="none")
        n = yield Query(
            "COPY t_copy (a, b, c) FROM STDIN (FORMAT BINARY)",
            copy_rows=((i, f"row {i}", None) for i in range(500)),
            copy_types=["int4", "text", "bytea"],
        )
        rows = yield Query("SELECT count(*), sum(a), max(b) FROM t_copy", fetch="one", tuples=True)
        return n, rows

    assert run(client.database, scope, plan()) == (500, (500, sum(range(500)), "row 99"))

    async def arun_it() -> Any:
        return await arun(client.database, scope, plan())

    import asyncio

    assert asyncio.run(arun_it()) == (500, (500, sum(range(500)), "row 99"))


def test_concurrent_upserts_of_one_key_make_one_document(db_url: str) -> None:
    with llmbase.connect(db_url, migrate=False) as c:
        c.collections.create("race", 4)
        errors: list[BaseException] = []

        def add() -> None:
            try:
                for _ in range(5):
                    c.collection("race").add([doc(None, ("same", vec(1, 0, 0, 0)))])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
    assert counts(db_url) == (1, 1)


# -- ownership and delete ----------------------------------------------------------------------
def test_owners_users_write_their_own(client: llmbase.LLMBase, db_url: str, col: Collection) -> None:
    alice = client.user("alice")
    mine = alice.collection("notes").add([doc("a", ("alice's", vec(1, 0, 0, 0)))])
    alice_id = alice.scope().user_id
    assert raw(db_url, "SELECT user_id FROM llmbase.documents") == [(alice_id,)]
    with pytest.raises(PermissionDenied):
        alice.collection("notes").add([doc("b", ("x", vec(1, 0, 0, 0)), user="bob")])
    same = alice.collection("notes").add([doc("a", ("alice's", vec(1, 0, 0, 0)), user="alice")])
    assert same.skipped == 1 and same.document_ids == mine.document_ids
    # tenant-wide: for a user (created on first use) or shared
    r = client.collection("notes").add(
        [doc("c", ("carol's", vec(0, 1, 0, 0)), user="carol"), doc("s", ("shared", vec(0, 0, 1, 0)))]
    )
    carol = client.users.get("carol")
    owners = dict(raw(db_url, "SELECT external_id, user_id FROM llmbase.documents"))
    assert owners == {"a": alice_id, "c": carol.id, "s": None}
    assert r.documents == 2
    with pytest.raises(NotFound):
        client.collection("notes").add([doc("z", ("x", vec(1, 0, 0, 0)), user=uuid.uuid4())])
    # bob cannot delete alice's document, nor the shared one
    bob = client.user("bob").collection("notes")
    assert bob.delete([*mine.document_ids, r.document_ids[1]]) == 0
    assert alice.collection("notes").delete(mine.document_ids) == 1
    assert counts(db_url) == (2, 2)


def test_delete_by_ids_filter_and_mine(client: llmbase.LLMBase, db_url: str, col: Collection) -> None:
    h = client.collection("notes")
    r = h.add(
        [
            doc("1", ("a", vec(1, 0, 0, 0)), metadata={"kind": "faq", "year": 2023}),
            doc("2", ("b", vec(0, 1, 0, 0)), metadata={"kind": "faq", "year": 2025}),
            doc("3", ("c", vec(0, 0, 1, 0)), metadata={"kind": "blog"}),
        ]
    )
    for args, field in (({}, "delete"), ({"filter": {}}, "filter"), ({"ids": "not-a-list"}, "ids")):
        with pytest.raises(ValidationError) as e:
            h.delete(**args)
        assert e.value.field == field
    with pytest.raises(ValidationError) as e:
        h.delete(filter={"year": {"$regex": "x"}})
    assert e.value.field == "filter"
    with pytest.raises(TenantMissing):
        h.delete(mine=True)  # a tenant-wide client has no "mine"
    assert h.delete(filter={"kind": "faq", "year": {"$gte": 2024}}) == 1
    assert h.delete(ids=[r.document_ids[0]], filter={"kind": "blog"}) == 0  # both must hold
    assert h.delete(ids=[r.document_ids[0], uuid.uuid4()]) == 1
    assert counts(db_url) == (1, 1)
    u = client.user("dana").collection("notes")
    u.add([doc("d1", ("x", vec(1, 0, 0, 0))), doc("d2", ("y", vec(0, 1, 0, 0)))])
    assert u.delete(mine=True) == 2
    assert counts(db_url) == (1, 1)  # the shared "blog" document stays


async def test_async_handle_writes_with_the_same_plans(aclient: llmbase.AsyncLLMBase, db_url: str) -> None:
    await aclient.collections.create("anotes", 4)
    h = aclient.collection("anotes")
    r = await h.add([doc("a", ("one", vec(1, 0, 0, 0))), {"text": "plain text, no vectors", "id": "b"}])
    assert (r.documents, r.chunks) == (2, 2)
    again = await h.add([doc("a", ("one", vec(1, 0, 0, 0))), {"text": "plain text, no vectors", "id": "b"}])
    assert again.skipped == 2 and again.document_ids == r.document_ids
    with pytest.raises(ValidationError):
        await h.add([doc("c", ("bad", vec(1, 2, 3)))])
    assert await h.delete([r.document_ids[0]]) == 1
    assert counts(db_url) == (1, 1)


def test_writes_need_a_tenant_scope(client: llmbase.LLMBase, col: Collection) -> None:
    with pytest.raises(TenantMissing):
        client.admin().collection(col).add([GOOD])
    other = client.tenants.create("other")
    with pytest.raises(NotFound):
        client.tenant(other.id).collection(col).add([GOOD])  # another tenant's collection row
    assert Scope(admin=True).admin
