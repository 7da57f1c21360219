"""Search plans against the real server: vector search (index with iterative scans, exact
fallback by estimate), full-text, hybrid RRF in one statement, RLS, reads by id.

Collections are made with llmbase.create_collection and rows with plain SQL (COPY as the
owner), so these tests do not depend on the write path. The helpers at the top are shared
with test_documents_filters.py and test_documents_sql.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

import llmbase
from llmbase.documents import search as S
from llmbase.documents.rows import Collection, SearchResult
from llmbase.errors import NotFound, PayloadTooLarge, ValidationError
from llmbase.stores._common import Ctx
from llmbase.stores._plan import Plan, Query

P = ParamSpec("P")
T = TypeVar("T")


# -- shared helpers ------------------------------------------------------------------------------
def clone_db(server_url: str, template: str) -> Iterator[str]:
    """A fresh database cloned from `template` (for module-scoped fixtures)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run(c: llmbase.LLMBase, fn: Callable[Concatenate[Ctx, P], Plan[T]], *args: P.args, **kw: P.kwargs) -> T:
    """Run a plan in the client's scope (the binding the store will give it)."""
    return c._core.run(fn, *args, **kw)


def create_collection(c: llmbase.LLMBase, name: str, dimension: int, **opts: Any) -> Collection:
    """llmbase.create_collection in the tenant-wide scope of `c`, read back as a Collection."""
    args: list[sql.Composable] = [sql.SQL("%s"), sql.SQL("%s")]
    params: list[Any] = [name, dimension]
    for key, value in opts.items():
        cast = sql.SQL("::regconfig") if key == "language" else sql.SQL("")
        args.append(sql.SQL("{} => %s{}").format(sql.Identifier(f"p_{key}"), cast))
        params.append(value)
    with c.database.transaction(c.scope()) as conn:
        conn.execute(sql.SQL("SELECT llmbase.create_collection({})").format(sql.SQL(", ").join(args)), params)
    return run(c, S.get_collection, name)


@dataclass
class Row:
    """One chunk to load: its document is `doc` (rows of one doc share owner and flag)."""

    doc: int
    content: str
    vector: Sequence[float] | None
    metadata: dict[str, Any] = field(default_factory=dict)
    user: UUID | None = None
    public: bool = False


@dataclass
class Loaded:
    docs: dict[int, UUID]
    chunks: list[UUID]  # in the order of the rows given


def vec_text(v: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def load(url: str, coll: Collection, rows: Sequence[Row], *, analyze: bool = True) -> Loaded:
    """Documents and chunks as the owner (COPY; RLS does not apply to the superuser)."""
    docs: dict[int, UUID] = {}
    chunk_ids = [uuid.uuid4() for _ in rows]
    col = "embedding" if coll.storage == "vector" else "embedding_half"
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY llmbase.documents (tenant_id, id, collection_id, user_id, is_public, title, source,"
            " external_id, content_hash, metadata) FROM STDIN"
        ) as cp:
            for r in rows:
                if r.doc in docs:
                    continue
                docs[r.doc] = uuid.uuid4()
                digest = hashlib.sha256(str(r.doc).encode()).hexdigest()
                cp.write_row(
                    (
                        coll.tenant_id,
                        docs[r.doc],
                        coll.id,
                        r.user,
                        r.public,
                        f"doc {r.doc}",
                        f"src/{r.doc}.txt",
                        f"ext-{r.doc}",
                        digest,
                        json.dumps({"doc": r.doc}),
                    )
                )
        positions: dict[int, int] = {}
        with cur.copy(
            sql.SQL(
                "COPY llmbase.chunks (tenant_id, collection_id, id, document_id, user_id, is_public,"
                " position, content, metadata, language, {}) FROM STDIN"
            ).format(sql.Identifier(col))
        ) as cp:
            for r, cid in zip(rows, chunk_ids, strict=True):
                pos = positions[r.doc] = positions.get(r.doc, -1) + 1
                cp.write_row(
                    (
                        coll.tenant_id,
                        coll.id,
                        cid,
                        docs[r.doc],
                        r.user,
                        r.public,
                        pos,
                        r.content,
                        json.dumps(r.metadata),
                        coll.language,
                        None if r.vector is None else vec_text(r.vector),
                    )
                )
        if analyze:
            conn.commit()
            conn.execute(sql.SQL("ANALYZE llmbase.{}").format(sql.Identifier(coll.partition_name)))
            conn.execute("ANALYZE llmbase.documents")
        conn.commit()
    return Loaded(docs, chunk_ids)


def exact_top(
    data: np.ndarray, query: Sequence[float], distance: str, k: int, mask: np.ndarray | None = None
) -> tuple[list[int], list[float]]:
    """Brute force in numpy: indexes of the k nearest rows (passing `mask`) and distances."""
    q = np.asarray(query, dtype=np.float64)
    x = data.astype(np.float64)
    if distance == "cosine":
        d = 1 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    elif distance == "l2":
        d = np.linalg.norm(x - q, axis=1)
    else:
        d = -(x @ q)
    idx = np.arange(len(x)) if mask is None else np.flatnonzero(mask)
    order = idx[np.argsort(d[idx], kind="stable")][:k]
    return [int(i) for i in order], [float(d[i]) for i in order]


def drive(conn: psycopg.Connection[Any], scope: llmbase.Scope, plan: Plan[T]) -> tuple[T, list[Query]]:
    """Run a plan on `conn` inside a rolled-back transaction, keeping the queries it ran."""
    seen: list[Query] = []
    with conn.transaction(force_rollback=True):
        conn.execute(
            "SELECT set_config('role', 'llmbase_app', true), set_config('llmbase.tenant_id', %s, true),"
            " set_config('llmbase.user_id', %s, true)",
            (str(scope.tenant_id), str(scope.user_id or "")),
        )
        try:
            q = next(plan)
            while True:
                seen.append(q)
                cur = conn.cursor(row_factory=q.row_factory())
                cur.execute(q.sql, q.params)
                q = plan.send(q.shape(cur.fetchall() if cur.description else None, cur.rowcount))
        except StopIteration as stop:
            return stop.value, seen


def explain(conn: psycopg.Connection[Any], scope: llmbase.Scope, q: Query, *, settings: str = "") -> str:
    """EXPLAIN (ANALYZE) of one query in `scope` (with the search's session settings)."""
    with conn.transaction(force_rollback=True):
        conn.execute(
            "SELECT set_config('role', 'llmbase_app', true), set_config('llmbase.tenant_id', %s, true),"
            " set_config('llmbase.user_id', %s, true)",
            (str(scope.tenant_id), str(scope.user_id or "")),
        )
        if settings:
            conn.execute(settings)
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF) ") + q.sql, q.params).fetchall()
    return "\n".join(r[0] for r in rows)


# -- the corpus: a few thousand chunks in one HNSW collection ----------------------------------------
DIM = 16
N_DOCS, PER_DOC = 300, 10
WORDS = [
    "alpine",
    "river",
    "granite",
    "meadow",
    "glacier",
    "canyon",
    "harbor",
    "lantern",
    "orchard",
    "quarry",
    "summit",
    "tundra",
    "volcano",
    "willow",
    "prairie",
    "lagoon",
]
RARE = 15  # chunks tagged "rare" (0.5%)


@dataclass
class Corpus:
    url: str
    client: llmbase.LLMBase
    tenant: UUID
    other_tenant: UUID
    u1: UUID
    u2: UUID
    kb: Collection
    vectors: np.ndarray
    rows: list[Row]
    loaded: Loaded
    other_chunks: list[UUID]

    def t(self) -> llmbase.LLMBase:
        return self.client.tenant(self.tenant)

    def user(self, u: UUID) -> llmbase.LLMBase:
        return self.client.tenant(self.tenant).user(u)


def _owner(doc: int, u1: UUID, u2: UUID) -> tuple[UUID | None, bool]:
    if doc % 10 == 0:
        return u2, False
    if doc % 10 == 1:
        return u1, False
    return None, doc % 10 == 2


@pytest.fixture(scope="module")
def corpus(server_url: str, template_db: str) -> Iterator[Corpus]:
    for url in clone_db(server_url, template_db):
        client = llmbase.connect(url, migrate=False)
        try:
            a = client.tenants.create("acme-docs")
            b = client.tenants.create("globex-docs")
            ta = client.tenant(a.id)
            u1 = ta.users.create("u1").id
            u2 = ta.users.create("u2").id
            kb = create_collection(ta, "kb", DIM, hnsw_m=8, hnsw_ef_construction=32)
            rng = np.random.default_rng(7)
            vectors = rng.normal(size=(N_DOCS * PER_DOC, DIM)).astype(np.float32)
            rare = set(rng.choice(len(vectors), size=RARE, replace=False).tolist())
            wr = random.Random(7)
            rows = []
            for n in range(len(vectors)):
                doc = n // PER_DOC
                user, public = _owner(doc, u1, u2)
                # "b" sorts first among the keys, so ANALYZE's histogram of metadata (jsonb
                # order: key by key) samples its values evenly: the planner estimates it well.
                meta = {"b": n % 10, "n": n, "bucket": f"b{n % 10}", "tag": "rare" if n in rare else "common"}
                text = " ".join(wr.sample(WORDS, 4))
                rows.append(Row(doc, text, vectors[n].tolist(), meta, user, public))
            loaded = load(url, kb, rows)
            # Another tenant: a collection with the same name and vectors equal to the queries.
            tb = client.tenant(b.id)
            kb_b = create_collection(tb, "kb", DIM)
            other = [
                Row(i, "alpine river granite meadow", vectors[i].tolist(), {"tag": "rare"}) for i in range(20)
            ]
            other += [Row(99, "alpine public", vectors[0].tolist(), {"tag": "rare"}, None, True)]
            other_loaded = load(url, kb_b, other)
            yield Corpus(url, client, a.id, b.id, u1, u2, kb, vectors, rows, loaded, other_loaded.chunks)
        finally:
            client.close()


@pytest.fixture
def conn(corpus: Corpus) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(corpus.url, autocommit=True) as c:
        yield c


def visible_mask(corpus: Corpus, user: UUID | None) -> np.ndarray:
    return np.array([user is None or r.user is None or r.user == user or r.public for r in corpus.rows])


def tag_mask(corpus: Corpus, key: str, value: Any) -> np.ndarray:
    return np.array([r.metadata[key] == value for r in corpus.rows])


# -- vector search -----------------------------------------------------------------------------------
def test_vector_search_returns_the_nearest_chunks_best_first(corpus: Corpus) -> None:
    q = corpus.vectors[5] + 0.1
    res = run(corpus.t(), S.search, corpus.kb, vector=q.tolist(), k=10)
    assert isinstance(res, SearchResult)
    assert (res.method, res.mode, res.candidates) == ("index", "vector", None)
    assert res.latency_ms is not None
    assert res.latency_ms > 0
    assert [h.rank for h in res.hits] == list(range(1, 11))
    truth, dists = exact_top(corpus.vectors, q, "cosine", 10)
    got = [corpus.loaded.chunks.index(h.chunk_id) for h in res.hits]
    assert len(set(got) & set(truth)) >= 8  # HNSW is approximate; on this data it is ~exact
    assert got[0] == 5
    for h in res.hits:
        n = corpus.loaded.chunks.index(h.chunk_id)
        row = corpus.rows[n]
        true_d = exact_top(corpus.vectors[n : n + 1], q, "cosine", 1)[1][0]
        assert h.distance == pytest.approx(true_d, abs=1e-5)
        assert h.score == pytest.approx(1 - true_d, abs=1e-5)
        assert (h.content, h.metadata, h.title, h.source) == (
            row.content,
            row.metadata,
            f"doc {row.doc}",
            f"src/{row.doc}.txt",
        )
        assert h.document_id == corpus.loaded.docs[row.doc]
        assert h.external_id == f"ext-{row.doc}"
        assert h.position == n % PER_DOC
    scores = [h.score for h in res.hits]
    assert scores == sorted(scores, reverse=True)
    assert dists[0] == pytest.approx(res.hits[0].distance, abs=1e-5)


def test_selective_filter_still_returns_k_results(
    corpus: Corpus, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.5% of 3,000 rows match; ef_search 10. A plain HNSW query loses them; the iterative
    scan (forced) finds k; the default picks exact search by the probe and equals brute force."""
    q = corpus.vectors[11] * -1 + 0.3
    qt = vec_text(q)
    scope = corpus.t().scope()
    plain = (
        'SELECT ch.id FROM llmbase.chunks ch WHERE ch.collection_id = {} AND ch.metadata @> \'{{"tag": "rare"}}\''
        " ORDER BY (ch.embedding::vector({})) <=> %s::vector({}) LIMIT 10"
    )
    with conn.transaction(force_rollback=True):
        conn.execute(
            "SELECT set_config('role', 'llmbase_app', true), llmbase.set_tenant_context(%s)",
            (scope.tenant_id,),
        )
        conn.execute("SET LOCAL hnsw.ef_search = 10")
        conn.execute("SET LOCAL hnsw.iterative_scan = off")
        # (else the planner finds the 15 through an index or a scan and sorts them)
        conn.execute("SET LOCAL enable_bitmapscan = off")
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_sort = off")
        q_plain = sql.SQL(plain).format(sql.Literal(corpus.kb.id), sql.Literal(DIM), sql.Literal(DIM))
        plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + q_plain, (qt,)).fetchall())
        assert f"Index Scan using {corpus.kb.partition_name}_vec" in plan
        lost = conn.execute(q_plain, (qt,)).fetchall()
    assert len(lost) < 10  # the problem iterative scans solve

    forced = run(
        corpus.t(),
        S.search,
        corpus.kb,
        vector=q.tolist(),
        k=10,
        ef_search=10,
        filter={"tag": "rare"},
        exact=False,
    )
    assert forced.method == "index"
    assert len(forced.hits) == 10
    assert all(h.metadata["tag"] == "rare" for h in forced.hits)

    auto = run(corpus.t(), S.search, corpus.kb, vector=q.tolist(), k=10, ef_search=10, filter={"tag": "rare"})
    assert (auto.method, auto.candidates) == ("exact", RARE)
    truth, _ = exact_top(corpus.vectors, q, "cosine", 10, tag_mask(corpus, "tag", "rare"))
    assert [corpus.loaded.chunks.index(h.chunk_id) for h in auto.hits] == truth
    assert len(set(truth) & {corpus.loaded.chunks.index(h.chunk_id) for h in forced.hits}) >= 8

    # A 10% filter with the threshold lowered: the probe reaches its limit, so the index.
    monkeypatch.setattr(S, "EXACT_ROWS", 100)
    wide = run(
        corpus.t(), S.search, corpus.kb, vector=q.tolist(), k=10, ef_search=10, filter={"bucket": "b3"}
    )
    assert (wide.method, wide.candidates) == ("index", 100)
    assert len(wide.hits) == 10
    assert all(h.metadata["bucket"] == "b3" for h in wide.hits)
    # The limit scales with the collection: k * rows / SCAN_BUDGET = 1000 * 3000 / 10000 = 300 > 100.
    big_k = run(corpus.t(), S.search, corpus.kb, vector=q.tolist(), k=1000, filter={"bucket": "b3"})
    assert (big_k.method, big_k.candidates) == ("index", 300)
    monkeypatch.setattr(S, "EXACT_ROWS", 301)
    big_k = run(corpus.t(), S.search, corpus.kb, vector=q.tolist(), k=1000, filter={"bucket": "b3"})
    assert (big_k.method, big_k.candidates) == ("exact", 300)
    assert len(big_k.hits) == 300


def test_the_planner_estimate_skips_the_probe_only_where_it_is_trusted(
    corpus: Corpus, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tenant-wide equality filters estimated far above the probe's limit go straight to the
    index; ranges (no statistics) and user scopes (RLS hides rows) are always counted."""
    monkeypatch.setattr(S, "EXACT_ROWS", 10)
    q = corpus.vectors[9].tolist()
    assert S.probe_limit(10, 3000) == 10
    assert S.probe_limit(1000, 3000) == 300
    t, u1 = corpus.t(), corpus.user(corpus.u1)
    res = run(t, S.search, corpus.kb, vector=q, filter={"b": 3})  # ~300 rows estimated
    assert (res.method, res.candidates, len(res.hits)) == ("index", None, 10)
    assert all(h.metadata["b"] == 3 for h in res.hits)
    assert run(t, S.search, corpus.kb, vector=q, filter={"n": {"$gte": 0}}).candidates == 10
    assert run(t, S.search, corpus.kb, vector=q, filter={"bucket": {"$ne": "b3"}}).candidates == 10
    assert run(u1, S.search, corpus.kb, vector=q, filter={"bucket": "b3"}).candidates == 10
    scope = t.scope()
    ctx = Ctx(scope, corpus.client._core.settings)
    _, queries = drive(conn, scope, S.search(ctx, corpus.kb, vector=q, filter={"b": 3}))
    assert queries[1].sql.as_string(conn).startswith("EXPLAIN (FORMAT JSON)")  # type: ignore[union-attr]
    assert len(queries) == 3  # settings, estimate, search


def test_exact_flag_and_collections_without_index(corpus: Corpus, conn: psycopg.Connection[Any]) -> None:
    q = corpus.vectors[3].tolist()
    res = run(corpus.t(), S.search, corpus.kb, vector=q, k=5, exact=True)
    assert (res.method, res.candidates) == ("exact", None)
    truth, _ = exact_top(corpus.vectors, q, "cosine", 5)
    assert [corpus.loaded.chunks.index(h.chunk_id) for h in res.hits] == truth
    # The plans differ as documented: the vector index for 'index', a sort for 'exact'.
    scope = corpus.t().scope()
    _, queries = drive(
        conn, scope, S.search(Ctx(scope, corpus.client._core.settings), corpus.kb, vector=q, k=5)
    )
    assert len(queries) == 2  # settings (+ probe when needed), then one search statement
    plan = explain(conn, scope, queries[1], settings="SET LOCAL hnsw.iterative_scan = relaxed_order")
    assert f"Index Scan using {corpus.kb.partition_name}_vec" in plan
    _, queries = drive(
        conn, scope, S.search(Ctx(scope, corpus.client._core.settings), corpus.kb, vector=q, k=5, exact=True)
    )
    plan = explain(conn, scope, queries[1])
    assert "_vec" not in plan
    assert "Sort" in plan


def test_threshold_applies_outside_the_nearest_neighbours(corpus: Corpus) -> None:
    q = corpus.vectors[42].tolist()
    full = run(corpus.t(), S.search, corpus.kb, vector=q, k=50, exact=True)
    cut = full.hits[20].score
    res = run(corpus.t(), S.search, corpus.kb, vector=q, k=50, threshold=cut, exact=True)
    assert [h.chunk_id for h in res.hits] == [h.chunk_id for h in full.hits[:20]]
    assert all(h.score > cut for h in res.hits)
    none = run(corpus.t(), S.search, corpus.kb, vector=q, k=5, threshold=1.0)
    assert none.hits == []


@pytest.mark.parametrize(
    ("distance", "storage", "index_type"),
    [
        ("cosine", "halfvec", "hnsw"),
        ("l2", "vector", "hnsw"),
        ("inner_product", "vector", "ivfflat"),
        ("l2", "halfvec", "none"),
    ],
)
def test_distances_storages_and_indexes(corpus: Corpus, distance: str, storage: str, index_type: str) -> None:
    """Collections of other dimensions, distances and storage live side by side."""
    dim = 5
    t = corpus.t()
    name = f"{distance}-{storage}-{index_type}"
    extra = {"ivfflat_lists": 4} if index_type == "ivfflat" else {}
    coll = create_collection(t, name, dim, distance=distance, storage=storage, index_type=index_type, **extra)
    assert (coll.dimension, coll.distance, coll.storage, coll.index_type) == (
        dim,
        distance,
        storage,
        index_type,
    )
    rng = np.random.default_rng(3)
    data = rng.normal(size=(300, dim)).astype(np.float16 if storage == "halfvec" else np.float32)
    load(corpus.url, coll, [Row(i // 3, f"row {i}", data[i].tolist()) for i in range(len(data))])
    q = rng.normal(size=dim).tolist()
    exact = run(t, S.search, coll, vector=q, k=10, exact=True)
    truth, dists = exact_top(data, q, distance, 10)
    assert [int(h.content.split()[1]) for h in exact.hits] == truth
    assert [h.distance for h in exact.hits] == pytest.approx(dists, abs=1e-3)
    expected_scores = [1 - d for d in dists] if distance == "cosine" else [-d for d in dists]
    assert [h.score for h in exact.hits] == pytest.approx(expected_scores, abs=1e-3)
    auto = run(t, S.search, coll, vector=q, k=10, ef_search=20)
    assert auto.method == ("exact" if index_type == "none" else "index")
    assert len(auto.hits) == 10
    assert len({h.chunk_id for h in auto.hits} & {h.chunk_id for h in exact.hits}) >= 7
    with pytest.raises(ValidationError) as err:
        run(t, S.search, coll, vector=[1.0] * DIM)
    assert err.value.field == "vector"


def test_vector_search_of_another_tenant_or_user_sees_only_what_rls_allows(corpus: Corpus) -> None:
    q = corpus.vectors[0].tolist()  # B holds 21 chunks at distance ~0 from it
    for c in (corpus.t(), corpus.user(corpus.u1)):
        for exact in (True, False):
            res = run(c, S.search, corpus.kb, vector=q, k=1000, exact=exact, filter={"tag": "rare"})
            assert not {h.chunk_id for h in res.hits} & set(corpus.other_chunks)
    res = run(corpus.user(corpus.u1), S.search, corpus.kb, vector=q, k=1000, exact=True)
    got = {corpus.loaded.chunks.index(h.chunk_id) for h in res.hits}
    expected, _ = exact_top(corpus.vectors, q, "cosine", 1000, visible_mask(corpus, corpus.u1))
    assert got == set(expected)
    assert not any(corpus.rows[n].user == corpus.u2 for n in got)
    assert any(corpus.rows[n].user == corpus.u1 for n in got)
    assert any(corpus.rows[n].public for n in got)
    # A user scope is narrowed by RLS: the probe runs even without a filter.
    auto = run(corpus.user(corpus.u1), S.search, corpus.kb, vector=q, k=10)
    assert auto.candidates is not None
    truth, _ = exact_top(corpus.vectors, q, "cosine", 10, visible_mask(corpus, corpus.u1))
    assert [corpus.loaded.chunks.index(h.chunk_id) for h in auto.hits] == truth
    # B's collection, searched from A's scope: not found (RLS would show B's public chunk).
    kb_b = run(corpus.client.tenant(corpus.other_tenant), S.get_collection, "kb")
    for kw in ({"vector": q}, {"mode": "text", "text": "alpine"}):
        with pytest.raises(NotFound):
            run(corpus.t(), S.search, kb_b, **kw)


# -- text and hybrid -----------------------------------------------------------------------------------
def test_full_text_search_ranks_with_the_collections_language(corpus: Corpus) -> None:
    t = corpus.t()
    en = create_collection(t, "text-en", 3)
    simple = create_collection(t, "text-simple", 3, language="simple")
    assert (en.language, simple.language) == ("english", "simple")
    texts = [
        "The runners were running up the hill",
        "A quiet run by the river, running again",
        "Nothing to see here",
        "run",
    ]
    for coll in (en, simple):
        load(corpus.url, coll, [Row(i, s, [1.0, i + 1.0, 0.5], {"i": i}) for i, s in enumerate(texts)])
    res = run(t, S.search, en, text="run", mode="text", k=10)
    assert (res.mode, res.method) == ("text", "exact")
    assert sorted(h.metadata["i"] for h in res.hits) == [0, 1, 3]  # english stems running -> run
    assert all(h.distance is None for h in res.hits)
    scores = [h.score for h in res.hits]
    assert scores == sorted(scores, reverse=True)
    assert all(s > 0 for s in scores)
    plain = run(t, S.search, simple, text="run", mode="text", k=10)
    assert sorted(h.metadata["i"] for h in plain.hits) == [1, 3]  # 'simple' does not stem
    # websearch syntax, filters, thresholds, and nothing for stop words only.
    assert {h.metadata["i"] for h in run(t, S.search, en, text="run -hill", mode="text").hits} == {1, 3}
    only = run(t, S.search, en, text="run", mode="text", filter={"i": {"$gte": 1}})
    assert {h.metadata["i"] for h in only.hits} == {1, 3}
    top = max(scores)
    assert run(t, S.search, en, text="run", mode="text", threshold=top).hits == []
    assert run(t, S.search, en, text="the", mode="text").hits == []


def test_hybrid_fuses_vector_and_text_ranks_in_one_statement(
    corpus: Corpus, conn: psycopg.Connection[Any]
) -> None:
    t = corpus.t()
    q = corpus.vectors[77].tolist()
    n = max(2 * 10, S.HYBRID_CANDIDATES)
    vec = run(t, S.search, corpus.kb, vector=q, k=n, exact=True, filter={"bucket": {"$ne": "b0"}})
    txt = run(
        t, S.search, corpus.kb, text="glacier summit", mode="text", k=n, filter={"bucket": {"$ne": "b0"}}
    )
    fused: dict[UUID, float] = {}
    for hits in (vec.hits, txt.hits):
        for h in hits:
            fused[h.chunk_id] = fused.get(h.chunk_id, 0.0) + 1.0 / (S.RRF_K + h.rank)
    expected = sorted(fused.items(), key=lambda kv: (-kv[1], str(kv[0])))[:10]
    res = run(
        t,
        S.search,
        corpus.kb,
        vector=q,
        text="glacier summit",
        mode="hybrid",
        k=10,
        exact=True,
        filter={"bucket": {"$ne": "b0"}},
    )
    assert (res.mode, res.method) == ("hybrid", "exact")
    assert [h.chunk_id for h in res.hits] == [cid for cid, _ in expected]
    assert [h.score for h in res.hits] == pytest.approx([s for _, s in expected])
    vec_d = {h.chunk_id: h.distance for h in vec.hits}
    assert all(
        h.distance == pytest.approx(vec_d[h.chunk_id]) if h.chunk_id in vec_d else h.distance is None
        for h in res.hits
    )
    assert all(h.metadata["bucket"] != "b0" for h in res.hits)
    # One statement for the fusion (the first query only sets the scan settings).
    scope = t.scope()
    ctx = Ctx(scope, corpus.client._core.settings)
    again, queries = drive(
        conn,
        scope,
        S.search(
            ctx,
            corpus.kb,
            vector=q,
            text="glacier summit",
            mode="hybrid",
            k=10,
            exact=True,
            filter={"bucket": {"$ne": "b0"}},
        ),
    )
    assert len(queries) == 2
    assert [h.chunk_id for h in again.hits] == [h.chunk_id for h in res.hits]
    # Through the index too, and with a similarity threshold on the vector side.
    idx = run(t, S.search, corpus.kb, vector=q, text="glacier summit", mode="hybrid", k=10, exact=False)
    assert idx.method == "index"
    assert len(idx.hits) == 10
    cut = vec.hits[4].score
    thr = run(
        t,
        S.search,
        corpus.kb,
        vector=q,
        text="zzzz",
        mode="hybrid",
        k=10,
        threshold=cut,
        exact=True,
        filter={"bucket": {"$ne": "b0"}},
    )
    assert [h.chunk_id for h in thr.hits] == [h.chunk_id for h in vec.hits[:4]]


# -- validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vector": [1.0] * (DIM - 1)}, "vector"),
        ({"vector": [float("nan")] + [1.0] * (DIM - 1)}, "vector"),
        ({"vector": [float("inf")] + [1.0] * (DIM - 1)}, "vector"),
        ({"vector": []}, "vector"),
        ({"vector": [0.0] * DIM}, "vector"),
        ({"vector": ["1"] * DIM}, "vector"),
        ({"vector": [True] * DIM}, "vector"),
        ({"vector": "[1,2]"}, "vector"),
        ({"vector": None}, "vector"),
        ({"vector": [1.0] * DIM, "k": 0}, "k"),
        ({"vector": [1.0] * DIM, "k": 1001}, "k"),
        ({"vector": [1.0] * DIM, "k": True}, "k"),
        ({"vector": [1.0] * DIM, "ef_search": 0}, "ef_search"),
        ({"vector": [1.0] * DIM, "threshold": float("nan")}, "threshold"),
        ({"vector": [1.0] * DIM, "exact": "yes"}, "exact"),
        ({"vector": [1.0] * DIM, "mode": "fuzzy"}, "mode"),
        ({"vector": [1.0] * DIM, "filter": {"$where": "1"}}, "filter"),
        ({"mode": "text", "text": "   "}, "text"),
        ({"mode": "text"}, "text"),
        ({"mode": "hybrid", "text": "x"}, "vector"),
        ({"mode": "text", "text": "x" * 10_001}, "text"),
    ],
)
def test_bad_input_fails_before_the_database(corpus: Corpus, kwargs: dict[str, Any], field: str) -> None:
    ctx = Ctx(corpus.t().scope(), corpus.client._core.settings)
    plan = S.search(ctx, corpus.kb, **kwargs)
    with pytest.raises(ValidationError) as err:
        next(plan)  # raised before the plan yields its first query
    assert err.value.field == field
    if kwargs.get("text", "").startswith("xxx"):
        assert isinstance(err.value, PayloadTooLarge)


def test_halfvec_rejects_values_it_cannot_hold(corpus: Corpus) -> None:
    coll = create_collection(corpus.t(), "half-range", 2, storage="halfvec")
    ctx = Ctx(corpus.t().scope(), corpus.client._core.settings)
    with pytest.raises(ValidationError, match="halfvec"):
        next(S.search(ctx, coll, vector=[1e6, 1.0]))


# -- reads by id -----------------------------------------------------------------------------------------
def test_get_collection_document_and_chunks(corpus: Corpus) -> None:
    t, u1 = corpus.t(), corpus.user(corpus.u1)
    assert run(t, S.get_collection, corpus.kb.id) == corpus.kb
    assert run(t, S.get_collection, str(corpus.kb.id)) == corpus.kb
    assert run(u1, S.get_collection, "kb") == corpus.kb
    kb_b = run(corpus.client.tenant(corpus.other_tenant), S.get_collection, "kb")
    for ref in (kb_b.id, "nope", uuid.uuid4()):
        with pytest.raises(NotFound):
            run(t, S.get_collection, ref)
    with pytest.raises(ValidationError):
        run(t, S.get_collection, "")

    u2_doc = corpus.loaded.docs[0]  # doc 0: u2's private
    u1_doc = corpus.loaded.docs[1]
    doc = run(t, S.get_document, u1_doc)
    assert (doc.user_id, doc.title, doc.collection_id, doc.is_public) == (
        corpus.u1,
        "doc 1",
        corpus.kb.id,
        False,
    )
    assert run(u1, S.get_document, u1_doc) == doc
    with pytest.raises(NotFound):
        run(u1, S.get_document, u2_doc)
    b_public = run(
        corpus.client.tenant(corpus.other_tenant),
        S.search,
        kb_b,
        vector=corpus.vectors[0].tolist(),
        k=30,
        exact=True,
    )
    public_doc = next(h.document_id for h in b_public.hits if h.content == "alpine public")
    with pytest.raises(NotFound):  # public, but another tenant's
        run(t, S.get_document, public_doc)

    chunks = run(u1, S.document_chunks, u1_doc)
    assert [c.position for c in chunks] == list(range(PER_DOC))
    assert [c.id for c in chunks] == corpus.loaded.chunks[PER_DOC : 2 * PER_DOC]
    assert all(c.embedding is None for c in chunks)
    with_vec = run(u1, S.document_chunks, u1_doc, embeddings=True)
    assert with_vec[0].embedding == pytest.approx(corpus.vectors[PER_DOC].tolist(), abs=1e-6)
    assert run(u1, S.document_chunks, u2_doc) == []

    wanted = [corpus.loaded.chunks[15], corpus.loaded.chunks[3], corpus.loaded.chunks[12], uuid.uuid4()]
    got = run(u1, S.get_chunks, corpus.kb, wanted)
    assert [c.id for c in got] == [wanted[0], wanted[2]]  # chunk 3 is u2's, the last is missing
    assert run(t, S.get_chunks, corpus.kb, []) == []


def test_list_documents_pages_and_filters(corpus: Corpus) -> None:
    t, u1 = corpus.t(), corpus.user(corpus.u1)
    seen: list[UUID] = []
    cursor = None
    while True:
        page = run(t, S.list_documents, corpus.kb, limit=70, cursor=cursor)
        seen.extend(d.id for d in page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == N_DOCS
    mine = run(u1, S.list_documents, corpus.kb, limit=1000)
    owners = {d.user_id for d in mine}
    assert owners == {None, corpus.u1}
    assert len(mine) == N_DOCS - N_DOCS // 10
    only = run(t, S.list_documents, corpus.kb, filter={"doc": {"$in": [1, 2, 3]}})
    assert sorted(d.title for d in only) == ["doc 1", "doc 2", "doc 3"]
    assert {d.user_id for d in run(t, S.list_documents, corpus.kb, user_id=corpus.u2, limit=1000)} == {
        corpus.u2
    }
    assert {d.user_id for d in run(t, S.list_documents, corpus.kb, shared=True, limit=1000)} == {None}


# -- property: filtered search equals exact search on small data -----------------------------------------------
SMALL_N = 150


@pytest.fixture(scope="module")
def small(corpus: Corpus) -> tuple[Collection, np.ndarray, list[Row], Loaded]:
    coll = create_collection(corpus.t(), "small", 4)
    rng = np.random.default_rng(11)
    data = rng.normal(size=(SMALL_N, 4)).astype(np.float32)
    rows = [
        Row(i, f"row {i}", data[i].tolist(), {"g": int(rng.integers(0, 5)), "h": int(rng.integers(0, 30))})
        for i in range(SMALL_N)
    ]
    return coll, data, rows, load(corpus.url, coll, rows)


_small_filters = st.one_of(
    st.just({}),
    st.builds(lambda g: {"g": g}, st.integers(0, 5)),
    st.builds(lambda hs: {"h": {"$in": hs}}, st.lists(st.integers(0, 30), max_size=4)),
    st.builds(lambda lo: {"h": {"$gte": lo}}, st.integers(0, 31)),
    st.builds(lambda g, lo: {"$or": [{"g": g}, {"h": {"$lt": lo}}]}, st.integers(0, 5), st.integers(0, 30)),
    st.builds(lambda g: {"$not": {"g": g}}, st.integers(0, 5)),
)


def _py_match(f: dict[str, Any], m: dict[str, Any]) -> bool:
    if not f:
        return True
    if "$or" in f:
        return any(_py_match(s, m) for s in f["$or"])
    if "$not" in f:
        return not _py_match(f["$not"], m)
    ((key, cond),) = f.items()
    if not isinstance(cond, dict):
        return bool(m[key] == cond)
    ((op, v),) = cond.items()
    return {"$in": lambda: m[key] in v, "$gte": lambda: m[key] >= v, "$lt": lambda: m[key] < v}[op]()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=4, max_size=4).filter(
        lambda v: math.hypot(*v) > 1e-3
    ),
    flt=_small_filters,
    k=st.integers(1, 20),
)
def test_filtered_search_equals_exact_search_on_small_data(
    corpus: Corpus,
    small: tuple[Collection, np.ndarray, list[Row], Loaded],
    query: list[float],
    flt: dict[str, Any],
    k: int,
) -> None:
    coll, data, rows, loaded = small
    t = corpus.t()
    mask = np.array([_py_match(flt, r.metadata) for r in rows])
    truth, dists = exact_top(data, query, "cosine", k, mask)
    exact = run(t, S.search, coll, vector=query, k=k, filter=flt, exact=True)
    auto = run(t, S.search, coll, vector=query, k=k, filter=flt, ef_search=1000)
    index = run(t, S.search, coll, vector=query, k=k, filter=flt, exact=False, ef_search=1000)
    for res in (exact, auto, index):
        assert len(res.hits) == len(truth)  # k results whenever k rows match
        assert [h.distance for h in res.hits] == pytest.approx(dists, abs=1e-5)
        got = [loaded.chunks.index(h.chunk_id) for h in res.hits]
        if len(set(np.round(dists, 4))) == len(dists):  # no near-ties: the same rows, in order
            assert got == truth


async def test_the_same_plans_run_async(corpus: Corpus) -> None:
    """Plans hold no I/O: the async runner gives the same results."""
    aclient = llmbase.connect_async(corpus.url, migrate=False)
    try:
        at = aclient.tenant(corpus.tenant)
        q = corpus.vectors[8].tolist()
        got = await at._core.arun(S.search, corpus.kb, vector=q, k=5, filter={"tag": "common"}, exact=True)
        want = run(corpus.t(), S.search, corpus.kb, vector=q, k=5, filter={"tag": "common"}, exact=True)
        assert [h.chunk_id for h in got.hits] == [h.chunk_id for h in want.hits]
        assert await at._core.arun(S.get_collection, "kb") == corpus.kb
    finally:
        await aclient.aclose()


def test_a_dropped_collection_finds_nothing(corpus: Corpus) -> None:
    t = corpus.t()
    coll = create_collection(t, "dropped", 2)
    load(corpus.url, coll, [Row(0, "gone", [1.0, 0.0], {"a": 1})])
    assert len(run(t, S.search, coll, vector=[1.0, 0.0], filter={"a": 1}).hits) == 1
    with t.database.transaction(t.scope()) as conn:
        conn.execute("SELECT llmbase.drop_collection(%s)", (coll.id,))
    for kw in ({}, {"filter": {"a": 1}}, {"mode": "hybrid", "text": "gone"}):
        assert run(t, S.search, coll, vector=[1.0, 0.0], **kw).hits == []
    with pytest.raises(NotFound):
        run(t, S.get_collection, "dropped")
