"""Search plans: vector (HNSW/IVFFlat with iterative scans, or exact), full-text, and
hybrid (reciprocal rank fusion), all under the caller's RLS; plus reads by id and listings.

Vector search follows the pgvector 0.8 README for filtered queries: `hnsw.iterative_scan
= relaxed_order` (and `ivfflat.iterative_scan`), the nearest rows in a MATERIALIZED CTE
ordered by distance with LIMIT k, re-sorted outside (`ORDER BY distance + 0`), and the
similarity threshold applied outside the CTE so it never shortens the index scan. The
ORDER BY repeats the partition index's expression (`(embedding::vector(N)) <=> q`) and the
collection id is a literal, so the planner prunes to the collection's partition and uses
its vector index.

When to search exactly instead (`SearchResult.method == "exact"`): a filter so selective
that an iterative scan would walk much of the graph to find k matches (and might stop at
`hnsw.max_scan_tuples`, 20,000 by default, with fewer), while measuring the few matching
rows is cheap. The rule, with N the partition's row count (pg_class.reltuples):

    limit = max(EXACT_ROWS, ceil(k * N / SCAN_BUDGET))       # 1,000 and 10,000
    exact  when fewer than `limit` visible rows pass the filter, else the index.

EXACT_ROWS is where measuring every match starts to cost more than an index walk;
SCAN_BUDGET (half of max_scan_tuples) keeps the index for filters that let an iterative
scan find k rows within half its budget. The count is a probe, `SELECT count(*) FROM
(SELECT 1 ... LIMIT limit)`, through the GIN index for equality filters, so it reads at
most `limit` rows. It is skipped when nothing narrows the rows (no filter, tenant-wide
scope: the index), and when a tenant-wide filter of equality / $in / $contains only has a
planner estimate of at least TRUST_ESTIMATE (4) times the limit and ESTIMATE_FLOOR (5%) of
the rows: the index. (The estimate comes from ANALYZE's sample of the metadata column: a
value holding 5% of the rows cannot be a sampling accident, one holding less might be.)
A user scope always probes: RLS hides other users' rows like a filter, and no estimate
knows how many. A collection without a vector index is searched exactly; `exact=`
overrides the rule either way. (Under RLS the GIN indexes serve `@>` and `@@` only because
migration 0005 marks their functions LEAKPROOF, where it runs as a superuser; elsewhere
the probe and the exact search read the partition sequentially.)

Scores (rows.Hit): cosine similarity (1 - distance), inner product, or -L2 distance for
vectors; ts_rank_cd for text; the RRF score sum(1 / (60 + rank)) for hybrid. `threshold`
keeps hits whose score exceeds it (in hybrid mode: vector candidates whose similarity
exceeds it, before fusion).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from uuid import UUID

from psycopg import sql

from .._sanitize import clean_text
from ..errors import NotFound, PayloadTooLarge, ValidationError
from ..stores._common import Ctx, Page, check_limit, decode_cursor, encode_cursor, parse_id
from ..stores._plan import Plan, Query
from . import _vectors
from .filters import compile_filter, indexable
from .rows import Chunk, Collection, Document, Hit, SearchMode, SearchResult

__all__ = [
    "ESTIMATE_FLOOR",
    "EXACT_ROWS",
    "MAX_K",
    "RRF_K",
    "SCAN_BUDGET",
    "TRUST_ESTIMATE",
    "document_chunks",
    "get_chunks",
    "get_collection",
    "get_document",
    "list_documents",
    "probe_limit",
    "search",
]

EXACT_ROWS = 1_000
SCAN_BUDGET = 10_000
TRUST_ESTIMATE = 4
ESTIMATE_FLOOR = 0.05
RRF_K = 60
MAX_K = 1_000
MAX_QUERY_CHARS = 10_000
#: Candidates each side of a hybrid search contributes to the fusion.
HYBRID_CANDIDATES = 40

_OPERATOR = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
Method = Literal["index", "exact"]

COLLECTION_COLS = sql.SQL(
    "tenant_id, id, name, embedding_model, dimension, distance, storage, index_type, hnsw_m,"
    " hnsw_ef_construction, ivfflat_lists, language::text AS language, partition_name, metadata,"
    " created_at"
)
DOCUMENT_COLS = sql.SQL(
    "tenant_id, id, collection_id, user_id, is_public, source, title, external_id, content_hash,"
    " metadata, chunk_count, token_count, created_at, updated_at"
)
CHUNK_COLS = sql.SQL(
    "tenant_id, collection_id, id, document_id, user_id, is_public, position, content, token_count,"
    " metadata, language::text AS language, created_at"
)
_EMBEDDING = sql.SQL(", coalesce(embedding::real[], embedding_half::real[]) AS embedding")


# -- collections, documents, chunks ---------------------------------------------------------
def get_collection(ctx: Ctx, ref: UUID | str) -> Plan[Collection]:
    """A collection of the current tenant by name or id (NotFound otherwise)."""
    tenant = ctx.scope.require_tenant()
    params: list[Any]
    if isinstance(ref, UUID):
        where, params = sql.SQL("id = %s"), [ref]
    elif isinstance(ref, str) and ref:
        # A name first; a name that looks like an id falls back to the id.
        where = sql.SQL("(name = %s OR id = llmbase.safe_uuid(%s))")
        params = [ref, ref]
    else:
        raise ValidationError("a collection name or id", field="collection")
    rows: list[Collection] = yield Query(
        sql.SQL(
            "SELECT {} FROM llmbase.collections WHERE tenant_id = %s AND {} ORDER BY name = %s DESC LIMIT 1"
        ).format(COLLECTION_COLS, where),
        (tenant, *params, str(ref)),
        row=Collection,
    )
    if not rows:
        raise NotFound("collection", ref)
    return rows[0]


def get_document(ctx: Ctx, document_id: UUID | str) -> Plan[Document]:
    """A document of the current tenant the scope may see (NotFound otherwise)."""
    tenant = ctx.scope.require_tenant()
    did = parse_id(document_id, field="document_id")
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.documents WHERE tenant_id = %s AND id = %s").format(DOCUMENT_COLS),
        (tenant, did),
        fetch="one",
        row=Document,
        not_found=NotFound("document", did),
    )
    return row  # type: ignore[no-any-return]


def document_chunks(ctx: Ctx, document_id: UUID | str, *, embeddings: bool = False) -> Plan[list[Chunk]]:
    """A visible document's chunks in order (empty when it is missing or not visible)."""
    tenant = ctx.scope.require_tenant()
    did = parse_id(document_id, field="document_id")
    # The collection id comes from an InitPlan, so the executor prunes to one partition.
    rows: list[Chunk] = yield Query(
        sql.SQL(
            "SELECT {}{} FROM llmbase.chunks WHERE tenant_id = %s AND document_id = %s"
            " AND collection_id = (SELECT collection_id FROM llmbase.documents WHERE tenant_id = %s AND id = %s)"
            " ORDER BY position"
        ).format(CHUNK_COLS, _EMBEDDING if embeddings else sql.SQL("")),
        (tenant, did, tenant, did),
        row=Chunk,
    )
    return rows


def get_chunks(
    ctx: Ctx, collection: Collection, ids: Iterable[UUID | str], *, embeddings: bool = False
) -> Plan[list[Chunk]]:
    """Chunks of a collection by id, in the order asked; missing or invisible ones left out."""
    tenant = ctx.scope.require_tenant()
    wanted = [parse_id(i, field="ids") for i in ids]
    if len(wanted) > MAX_K:
        raise ValidationError(f"at most {MAX_K} ids", field="ids")
    if not wanted:
        return []
    rows: list[Chunk] = yield Query(
        sql.SQL(
            "SELECT {}{} FROM llmbase.chunks WHERE tenant_id = %s AND collection_id = {} AND id = ANY(%s)"
        ).format(CHUNK_COLS, _EMBEDDING if embeddings else sql.SQL(""), sql.Literal(collection.id)),
        (tenant, wanted),
        row=Chunk,
    )
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in dict.fromkeys(wanted) if i in by_id]


def list_documents(
    ctx: Ctx,
    collection: Collection,
    *,
    limit: int = 50,
    cursor: str | None = None,
    filter: Mapping[str, Any] | None = None,
    user_id: UUID | str | None = None,
    shared: bool | None = None,
) -> Plan[Page[Document]]:
    """Newest first. `filter` is the metadata filter language (on document metadata);
    `user_id` narrows to one owner, `shared=True` to the tenant's shared documents."""
    tenant = ctx.scope.require_tenant()
    n = check_limit(limit)
    cond, params = compile_filter(filter)
    where: list[sql.Composable] = [sql.SQL("tenant_id = %s"), sql.SQL("collection_id = %s"), cond]
    args: list[Any] = [tenant, collection.id, *params]
    if user_id is not None:
        where.append(sql.SQL("user_id = %s"))
        args.append(parse_id(user_id, field="user_id"))
    if shared is not None:
        where.append(sql.SQL("user_id IS NULL") if shared else sql.SQL("user_id IS NOT NULL"))
    if cursor:
        at, ident = decode_cursor(cursor)
        where.append(sql.SQL("(created_at, id) < (%s, %s)"))
        args.extend([at, ident])
    rows: list[Document] = yield Query(
        sql.SQL(
            "SELECT {} FROM llmbase.documents WHERE {} ORDER BY created_at DESC, id DESC LIMIT %s"
        ).format(DOCUMENT_COLS, sql.SQL(" AND ").join(where)),
        (*args, n + 1),
        row=Document,
    )
    items = rows[:n]
    nxt = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > n else None
    return Page(items, nxt)


# -- search -----------------------------------------------------------------------------------
def search(
    ctx: Ctx,
    collection: Collection,
    *,
    vector: Iterable[float] | None = None,
    text: str | None = None,
    k: int = 10,
    threshold: float | None = None,
    filter: Mapping[str, Any] | None = None,
    mode: SearchMode = "vector",
    ef_search: int | None = None,
    exact: bool | None = None,
) -> Plan[SearchResult]:
    """The k best chunks of `collection` the scope may see (see the module docstring).

    `ef_search`: HNSW's candidate list for this query; for IVFFlat, the lists probed
    (default √lists)."""
    tenant = ctx.scope.require_tenant()
    if mode not in ("vector", "text", "hybrid"):
        raise ValidationError("must be 'vector', 'text' or 'hybrid'", field="mode")
    k = _int(k, "k", 1, MAX_K)
    ef = None if ef_search is None else _int(ef_search, "ef_search", 1, 1000)
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold)
    ):
        raise ValidationError("must be a finite number", field="threshold")
    if exact is not None and not isinstance(exact, bool):
        raise ValidationError("must be true, false or None", field="exact")
    threshold = None if threshold is None else float(threshold)
    qvec = _query_vector(vector, collection) if mode != "text" else None
    qtext = _query_text(text) if mode != "vector" else None
    cond, fparams = compile_filter(filter, column=sql.SQL("ch.metadata"))
    if collection.tenant_id != tenant:
        # RLS shows every tenant's public chunks; a search stays in its own tenant.
        raise NotFound("collection", collection.id)
    started = time.perf_counter()

    settings = yield _settings(collection, ef)
    vs = settings["vs"]
    method: Method = "exact"
    candidates: int | None = None
    if qvec is not None:
        narrowed = bool(filter) or ctx.scope.user_id is not None
        method, candidates = yield from _choose(
            ctx, collection, settings, narrowed, filter, cond, fparams, k, exact
        )
    if mode == "vector":
        assert qvec is not None
        q = _vector_query(collection, vs, qvec, method, cond, fparams, k, threshold)
    elif mode == "text":
        assert qtext is not None
        q = _text_query(collection, qtext, cond, fparams, k, threshold)
    else:
        assert qvec is not None
        assert qtext is not None
        q = _hybrid_query(collection, vs, qvec, qtext, method, cond, fparams, k, threshold)
    rows: list[dict[str, Any]] = yield q
    hits = [
        Hit(
            rank=i,
            chunk_id=r["chunk_id"],
            document_id=r["document_id"],
            content=r["content"],
            metadata=r["metadata"],
            score=float(r["score"]),
            distance=None if r["distance"] is None else float(r["distance"]),
            title=r["title"],
            source=r["source"],
            external_id=r["external_id"],
            position=r["position"],
        )
        for i, r in enumerate(rows, start=1)
    ]
    latency = (time.perf_counter() - started) * 1000
    return SearchResult(hits, method, mode, candidates=candidates, latency_ms=latency)


def _choose(
    ctx: Ctx,
    c: Collection,
    settings: Mapping[str, Any],
    narrowed: bool,
    filter: Mapping[str, Any] | None,
    cond: sql.Composable,
    params: Sequence[Any],
    k: int,
    exact: bool | None,
) -> Plan[tuple[Method, int | None]]:
    """Index or exact, by the rule of the module docstring; and the probe's count if taken."""
    if exact is not None or c.index_type == "none":
        return ("exact" if exact or c.index_type == "none" else "index"), None
    if not narrowed:
        return "index", None  # nothing narrows the rows: the index finds k
    reltuples = float(settings["reltuples"])
    limit = probe_limit(k, reltuples)
    if ctx.scope.user_id is None and indexable(filter):
        share = _share((yield _estimate(c, cond, params))[0])
        if share * reltuples >= max(TRUST_ESTIMATE * limit, ESTIMATE_FLOOR * reltuples):
            return "index", None
    count: int = (yield _probe(c, cond, params, limit))[0]
    return ("exact" if count < limit else "index"), count


# -- validation ---------------------------------------------------------------------------------
def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(f"must be an integer from {lo} to {hi}", field=field)
    return value


def _query_vector(value: Iterable[float] | None, collection: Collection) -> str:
    """The query vector as pgvector text, checked like stored vectors (documents/_vectors.py)."""
    if value is None:
        raise ValidationError("a query vector is required for vector and hybrid search", field="vector")
    raw = _vectors.check_for(value, collection, field="vector")
    # 9 significant digits round-trip a float4 exactly.
    return "[" + ",".join([format(f, ".9g") for f in _vectors.floats(raw)]) + "]"


def _query_text(value: str | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("a query text is required for text and hybrid search", field="text")
    if len(value) > MAX_QUERY_CHARS:
        raise PayloadTooLarge(f"longer than {MAX_QUERY_CHARS} characters", field="text")
    return clean_text(value)


# -- SQL ----------------------------------------------------------------------------------------
def probe_limit(k: int, reltuples: float) -> int:
    """The probe's LIMIT: fewer matching rows than this means an exact search (module doc)."""
    return max(EXACT_ROWS, math.ceil(k * max(reltuples, 0.0) / SCAN_BUDGET))


def _settings(c: Collection, ef: int | None) -> Query:
    """This transaction's search settings; the vector schema and the partition's row count.

    Custom plans always: whether the GIN index, a scan or the vector index serves a query
    depends on the filter's values, which a cached generic plan would not see."""
    cols: list[sql.Composable] = [
        sql.SQL("llmbase.vector_schema()::text AS vs"),
        sql.SQL(
            "coalesce((SELECT reltuples FROM pg_catalog.pg_class WHERE oid = to_regclass({})), 0)::float8"
            " AS reltuples"
        ).format(sql.Literal(f"llmbase.{c.partition_name}")),
        sql.SQL("set_config('plan_cache_mode', 'force_custom_plan', true) AS plans"),
        sql.SQL("set_config('hnsw.iterative_scan', 'relaxed_order', true) AS hnsw_iterative"),
        sql.SQL("set_config('ivfflat.iterative_scan', 'relaxed_order', true) AS ivfflat_iterative"),
    ]
    args: list[Any] = []
    if c.index_type == "hnsw" and ef is not None:
        cols.append(sql.SQL("set_config('hnsw.ef_search', %s, true) AS ef"))
        args.append(str(ef))
    if c.index_type == "ivfflat":
        probes = ef if ef is not None else max(1, round(math.sqrt(c.ivfflat_lists)))
        cols.append(sql.SQL("set_config('ivfflat.probes', %s, true) AS probes"))
        args.append(str(min(probes, c.ivfflat_lists)))
    return Query(sql.SQL("SELECT ") + sql.SQL(", ").join(cols), args, fetch="one")


def _matching(c: Collection, cond: sql.Composable) -> sql.Composable:
    """The embedded chunks of the collection passing the filter (RLS adds the rest)."""
    return sql.SQL("FROM llmbase.chunks ch WHERE ch.collection_id = {} AND ch.{} IS NOT NULL AND {}").format(
        sql.Literal(c.id), _column(c), cond
    )


def _estimate(c: Collection, cond: sql.Composable, params: Sequence[Any]) -> Query:
    """The planner's row estimates with and without the filter (EXPLAIN: planned, not run).

    Both carry the same RLS conditions, whose selectivity the planner can only guess; their
    ratio is the filter's share of the rows, from the column statistics."""
    return Query(
        sql.SQL(
            "EXPLAIN (FORMAT JSON) SELECT (SELECT count(*) FROM (SELECT 1 {}) f),"
            " (SELECT count(*) FROM (SELECT 1 {}) a)"
        ).format(_matching(c, cond), _matching(c, sql.SQL("TRUE"))),
        params,
        fetch="one",
        tuples=True,
    )


def _share(explained: Any) -> float:
    """The filtered / unfiltered estimate of `_estimate`'s plan (0 when it looks unexpected)."""
    scans: list[float] = []

    def walk(node: Mapping[str, Any]) -> None:
        if "Relation Name" in node:
            scans.append(float(node["Plan Rows"]))
        for child in node.get("Plans", ()):
            walk(child)

    walk(explained[0]["Plan"])
    if len(scans) != 2 or scans[1] <= 0:
        return 0.0
    return min(1.0, scans[0] / scans[1])


def _probe(c: Collection, cond: sql.Composable, params: Sequence[Any], limit: int) -> Query:
    """How many visible rows match, counting no further than `limit`."""
    return Query(
        sql.SQL("SELECT count(*) FROM (SELECT 1 {} LIMIT %s) s").format(_matching(c, cond)),
        [*params, limit],
        fetch="one",
        tuples=True,
    )


def _column(c: Collection) -> sql.Identifier:
    return sql.Identifier("embedding" if c.storage == "vector" else "embedding_half")


def _distance(c: Collection, vs: str) -> sql.Composable:
    """The partition index's expression against the query vector (one parameter)."""
    typ = sql.SQL("{}.{}({})").format(sql.Identifier(vs), sql.Identifier(c.storage), sql.Literal(c.dimension))
    return sql.SQL("(ch.{col}::{typ}) OPERATOR({vs}.{op}) %s::{typ}").format(
        col=_column(c), typ=typ, vs=sql.Identifier(vs), op=sql.SQL(_OPERATOR[c.distance])
    )


def _score(c: Collection, distance: sql.Composable) -> sql.Composable:
    """Similarity from distance: higher is better."""
    if c.distance == "cosine":
        return sql.SQL("(1 - {})::float8").format(distance)
    return sql.SQL("(- {})::float8").format(distance)


_CHUNK = sql.SQL("ch.tenant_id, ch.id, ch.document_id, ch.position, ch.content, ch.metadata")


def _nearest(
    c: Collection, vs: str, method: str, cond: sql.Composable, params: Sequence[Any], qvec: str, limit: int
) -> tuple[sql.Composable, list[Any]]:
    """SELECT of the `limit` nearest visible chunks passing the filter, nearest first.

    'index': ORDER BY the index expression (an iterative index scan); 'exact': ORDER BY
    distance + 0, which no index provides, so every matching row is measured."""
    if method == "index":
        q = sql.SQL("SELECT {chunk}, {dist} AS distance {matching} ORDER BY distance LIMIT %s")
    else:
        q = sql.SQL(
            "SELECT * FROM (SELECT {chunk}, {dist} AS distance {matching}) s ORDER BY s.distance + 0, s.id LIMIT %s"
        )
    return q.format(chunk=_CHUNK, dist=_distance(c, vs), matching=_matching(c, cond)), [qvec, *params, limit]


_DOC_JOIN = sql.SQL(" LEFT JOIN llmbase.documents d ON d.tenant_id = r.tenant_id AND d.id = r.document_id")
_OUT = sql.SQL(
    "r.id AS chunk_id, r.document_id, r.position, r.content, r.metadata, d.title, d.source, d.external_id"
)


def _vector_query(
    c: Collection,
    vs: str,
    qvec: str,
    method: str,
    cond: sql.Composable,
    params: Sequence[Any],
    k: int,
    threshold: float | None,
) -> Query:
    inner, args = _nearest(c, vs, method, cond, params, qvec, k)
    score = _score(c, sql.SQL("r.distance"))
    keep = sql.SQL("{} > %s").format(score) if threshold is not None else sql.SQL("TRUE")
    q = sql.SQL(
        "WITH r AS MATERIALIZED ({inner}) SELECT {out}, r.distance::float8 AS distance, {score} AS score"
        " FROM r{join} WHERE {keep} ORDER BY r.distance + 0, r.id"
    ).format(inner=inner, out=_OUT, score=score, join=_DOC_JOIN, keep=keep)
    return Query(q, [*args, *([threshold] if threshold is not None else [])])


def _tsquery() -> sql.Composable:
    return sql.SQL("websearch_to_tsquery(%s::regconfig, %s)")


def _matching_text(
    c: Collection, qtext: str, cond: sql.Composable, params: Sequence[Any], limit: int
) -> tuple[sql.Composable, list[Any]]:
    """SELECT of the `limit` best full-text matches (ts_rank_cd), best first."""
    q = sql.SQL(
        "SELECT {chunk}, ts_rank_cd(ch.fts, {tsq})::float8 AS rank FROM llmbase.chunks ch"
        " WHERE ch.collection_id = {cid} AND ch.fts @@ {tsq} AND {cond} ORDER BY rank DESC, ch.id LIMIT %s"
    ).format(chunk=_CHUNK, tsq=_tsquery(), cid=sql.Literal(c.id), cond=cond)
    lang = c.language
    return q, [lang, qtext, lang, qtext, *params, limit]


def _text_query(
    c: Collection, qtext: str, cond: sql.Composable, params: Sequence[Any], k: int, threshold: float | None
) -> Query:
    inner, args = _matching_text(c, qtext, cond, params, k)
    keep = sql.SQL("r.rank > %s") if threshold is not None else sql.SQL("TRUE")
    q = sql.SQL(
        "WITH r AS MATERIALIZED ({inner}) SELECT {out}, NULL::float8 AS distance, r.rank AS score"
        " FROM r{join} WHERE {keep} ORDER BY r.rank DESC, r.id"
    ).format(inner=inner, out=_OUT, join=_DOC_JOIN, keep=keep)
    return Query(q, [*args, *([threshold] if threshold is not None else [])])


def _hybrid_query(
    c: Collection,
    vs: str,
    qvec: str,
    qtext: str,
    method: str,
    cond: sql.Composable,
    params: Sequence[Any],
    k: int,
    threshold: float | None,
) -> Query:
    """Both candidate lists and their reciprocal rank fusion in one statement."""
    n = min(MAX_K, max(2 * k, HYBRID_CANDIDATES))
    vec, vargs = _nearest(c, vs, method, cond, params, qvec, n)
    txt, targs = _matching_text(c, qtext, cond, params, n)
    keep = (
        sql.SQL("{} > %s").format(_score(c, sql.SQL("distance")))
        if threshold is not None
        else sql.SQL("TRUE")
    )
    cols = ("tenant_id", "id", "document_id", "position", "content", "metadata")
    merged = sql.SQL(", ").join(
        sql.SQL("coalesce(v.{c}, t.{c}) AS {c}").format(c=sql.Identifier(col)) for col in cols
    )
    q = sql.SQL(
        "WITH vec AS MATERIALIZED ({vec}),"
        " txt AS MATERIALIZED ({txt}),"
        " v AS (SELECT *, row_number() OVER (ORDER BY distance + 0, id) AS n FROM vec WHERE {keep}),"
        " t AS (SELECT *, row_number() OVER (ORDER BY rank DESC, id) AS n FROM txt),"
        " r AS (SELECT {merged}, v.distance::float8 AS distance,"
        "   coalesce(1.0::float8 / (%s + v.n), 0) + coalesce(1.0::float8 / (%s + t.n), 0) AS score"
        "   FROM v FULL JOIN t ON t.id = v.id ORDER BY score DESC, id LIMIT %s)"
        " SELECT {out}, r.distance, r.score FROM r{join} ORDER BY r.score DESC, r.id"
    ).format(vec=vec, txt=txt, keep=keep, merged=merged, out=_OUT, join=_DOC_JOIN)
    args = [*vargs, *targs, *([threshold] if threshold is not None else []), RRF_K, RRF_K, k]
    return Query(q, args)
