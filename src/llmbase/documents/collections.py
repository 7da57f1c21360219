"""Collections: create, get, list, drop, reindex, stats (plans).

A collection is created only through llmbase.create_collection() (migration 0005), which
needs a tenant-wide scope: the SDK's tenant client, not a user's. Input is checked here
first, so a bad name, dimension or index setting is a ValidationError before the database.
Reindex is an operator task (it rebuilds the index as the schema owner): run it from the
root client or `client.admin()`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any, get_args
from uuid import UUID

from psycopg import sql

from .._sanitize import bounded_text, json_object
from ..errors import NotFound, PermissionDenied, TenantMissing, ValidationError
from ..stores._common import Ctx
from ..stores._plan import Plan, Query
from . import search
from .rows import Collection, CollectionStats, Distance, IndexType, ReindexResult, Storage

__all__ = ["create", "drop", "get", "list_", "reindex", "restore_index", "stats", "suspend_index"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_LANGUAGE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MAX_INDEXED = {"vector": 2000, "halfvec": 4000}

COLUMNS = sql.SQL(
    "tenant_id, id, name, embedding_model, dimension, distance, storage, index_type, hnsw_m,"
    " hnsw_ef_construction, ivfflat_lists, language::text AS language, partition_name, metadata, created_at"
)


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValidationError(f"must be an integer from {lo} to {hi}", field=field)
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationError(f"must be one of {', '.join(choices)}", field=field)
    return str(value)


def _tenant_wide(ctx: Ctx, what: str) -> UUID:
    if ctx.scope.admin:
        raise TenantMissing(f"{what} needs a tenant client: client.tenant(...)")
    tid = ctx.scope.require_tenant()
    if ctx.scope.user_id is not None:
        raise PermissionDenied(f"{what} needs a tenant-wide client, not a user's")
    return tid


def create(
    ctx: Ctx,
    name: str,
    dimension: int,
    *,
    distance: Distance = "cosine",
    storage: Storage = "vector",
    index: IndexType = "hnsw",
    m: int = 16,
    ef_construction: int = 64,
    lists: int = 100,
    language: str = "english",
    embedding_model: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Collection]:
    """A new collection of the tenant, with its chunks partition and vector index."""
    tid = _tenant_wide(ctx, "creating a collection")
    if not isinstance(name, str) or not NAME.match(name):
        raise ValidationError(
            "must be 1-100 characters: letters, digits and _ . : - (starting with a letter or digit)",
            field="name",
        )
    _int(dimension, "dimension", 1, 16000)
    _choice(distance, "distance", get_args(Distance))
    _choice(storage, "storage", get_args(Storage))
    _choice(index, "index", get_args(IndexType))
    _int(m, "m", 2, 100)
    _int(ef_construction, "ef_construction", 4, 1000)
    if ef_construction < 2 * m:
        raise ValidationError("must be at least 2 * m", field="ef_construction")
    _int(lists, "lists", 1, 32768)
    if index != "none" and dimension > MAX_INDEXED[storage]:
        raise ValidationError(
            f"{storage} indexes hold at most {MAX_INDEXED[storage]} dimensions"
            " (use storage='halfvec' for up to 4000, or index='none')",
            field="dimension",
        )
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise ValidationError("must be a text search configuration name, like 'english'", field="language")
    model = bounded_text(embedding_model, field="embedding_model", max_chars=200) if embedding_model else None
    meta = json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes)
    known = yield Query(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_ts_config WHERE cfgname = %s)",
        (language,),
        fetch="one",
        tuples=True,
    )
    if not known[0]:
        raise ValidationError(f"unknown text search configuration {language!r}", field="language")
    row = yield Query(
        sql.SQL(
            "SELECT {} FROM llmbase.create_collection(%s, %s, %s, %s, %s, %s, %s, %s, %s::regconfig, %s, %s::jsonb)"
        ).format(COLUMNS),
        (name, dimension, distance, storage, index, m, ef_construction, lists, language, model, meta),
        fetch="one",
        row=Collection,
        conflict=f"a collection named {name!r} exists",
    )
    assert row.tenant_id == tid
    return row  # type: ignore[no-any-return]


def _lookup(collection: Collection | UUID | str) -> tuple[sql.Composable, list[Any]]:
    """WHERE condition for a collection given by name or id (a name wins over an id)."""
    if isinstance(collection, Collection):
        return sql.SQL("id = %s"), [collection.id]
    if isinstance(collection, UUID):
        return sql.SQL("id = %s"), [collection]
    if not isinstance(collection, str) or not collection:
        raise ValidationError("must be a collection name or id", field="collection")
    try:
        ident = UUID(collection)
    except ValueError:
        return sql.SQL("name = %s"), [collection]
    return sql.SQL("(name = %s OR id = %s)"), [collection, ident]


def get(ctx: Ctx, collection: Collection | UUID | str) -> Plan[Collection]:
    """A collection of the current tenant by name or id (NotFound otherwise)."""
    if ctx.scope.admin:
        raise TenantMissing("collections are looked up through a tenant or user client")
    ref = collection.id if isinstance(collection, Collection) else collection
    return (yield from search.get_collection(ctx, ref))


def list_(ctx: Ctx) -> Plan[list[Collection]]:
    """The tenant's collections by name."""
    if ctx.scope.admin:
        raise TenantMissing("collections are listed through a tenant or user client")
    tid = ctx.scope.require_tenant()
    rows = yield Query(
        sql.SQL("SELECT {} FROM llmbase.collections WHERE tenant_id = %s ORDER BY name").format(COLUMNS),
        (tid,),
        row=Collection,
    )
    return rows  # type: ignore[no-any-return]


def drop(ctx: Ctx, collection: Collection | UUID | str) -> Plan[bool]:
    """Drop a collection with its documents, chunks and index (tenant-wide scope)."""
    _tenant_wide(ctx, "dropping a collection")
    c = yield from get(ctx, collection)
    row = yield Query("SELECT llmbase.drop_collection(%s)", (c.id,), fetch="one", tuples=True)
    return bool(row[0])


def suspend_index(ctx: Ctx, collection: Collection, incoming: int) -> Plan[bool]:
    """Before a bulk load of `incoming` chunks: drop the vector index when the load is at
    least 10,000 chunks and at least the collection's size (llmbase.suspend_collection_index;
    a no-op in a user scope). True when the index is now missing (dropped, or already
    missing after an interrupted load): restore it after the load."""
    row = yield Query(
        "SELECT llmbase.suspend_collection_index(%s, %s)", (collection.id, incoming), fetch="one", tuples=True
    )
    return bool(row[0])


def restore_index(ctx: Ctx, collection: Collection) -> Plan[str | None]:
    """After a load: build the vector index if it is missing (one build over all rows,
    parallel workers); the index name when it built one."""
    row = yield Query(
        "SELECT llmbase.restore_collection_index(%s)", (collection.id,), fetch="one", tuples=True
    )
    return row[0] if row else None


def _work_mem(chunks: int, c: Collection) -> str:
    """maintenance_work_mem for a build: the vectors plus the graph, with room to spare,
    from 64 MB up to 2 GB (an HNSW build much larger than memory is very slow)."""
    per_row = c.dimension * (2 if c.storage == "halfvec" else 4) + 16 * c.hnsw_m + 128
    mb = int(chunks * per_row * 1.5 / 2**20) + 64
    return f"{min(max(mb, 64), 2048)}MB"


def reindex(
    ctx: Ctx,
    collection: UUID | str,
    *,
    tenant: UUID | None = None,
    m: int | None = None,
    ef_construction: int | None = None,
    lists: int | None = None,
    maintenance_work_mem: str | None = None,
    workers: int | None = None,
) -> Plan[ReindexResult]:
    """Rebuild a collection's vector index (optionally with new m / ef_construction /
    lists) with a suitable maintenance_work_mem and parallel workers; report its size.
    Operator scope; `tenant` names the tenant whose collection `collection` names."""
    if not ctx.scope.admin:
        raise PermissionDenied("reindex is an operator task: use the root client or client.admin()")
    if m is not None:
        _int(m, "m", 2, 100)
    if ef_construction is not None:
        _int(ef_construction, "ef_construction", 4, 1000)
    if lists is not None:
        _int(lists, "lists", 1, 32768)
    if workers is None:
        workers = max(0, min(8, (os.cpu_count() or 1) - 1))
    _int(workers, "workers", 0, 64)
    if maintenance_work_mem is not None and not re.fullmatch(r"\d{1,7}\s*(kB|MB|GB)", maintenance_work_mem):
        raise ValidationError("must be a size like '512MB' or '2GB'", field="maintenance_work_mem")
    cond, params = _lookup(collection)
    if tenant is not None:
        cond = sql.SQL("{} AND tenant_id = %s").format(cond)
        params.append(tenant)
    rows = yield Query(
        sql.SQL("SELECT {} FROM llmbase.collections WHERE {} FOR UPDATE").format(COLUMNS, cond),
        params,
        row=Collection,
    )
    if not rows:
        raise NotFound("collection", collection)
    if len(rows) > 1:
        raise ValidationError(
            "several tenants have a collection of this name: name the tenant", field="tenant"
        )
    c: Collection = rows[0]
    hm, ef, li = m or c.hnsw_m, ef_construction or c.hnsw_ef_construction, lists or c.ivfflat_lists
    if ef < 2 * hm:
        raise ValidationError("must be at least 2 * m", field="ef_construction")
    if (hm, ef, li) != (c.hnsw_m, c.hnsw_ef_construction, c.ivfflat_lists):
        yield Query(
            "UPDATE llmbase.collections SET hnsw_m = %s, hnsw_ef_construction = %s, ivfflat_lists = %s WHERE id = %s",
            (hm, ef, li, c.id),
            fetch="none",
        )
    count = yield Query(
        sql.SQL("SELECT count(*) FROM llmbase.chunks WHERE collection_id = {}").format(sql.Literal(c.id)),
        fetch="one",
        tuples=True,
    )
    mem = maintenance_work_mem or _work_mem(count[0], c)
    yield Query(
        "SELECT set_config('maintenance_work_mem', %s, true), set_config('max_parallel_maintenance_workers', %s, true)",
        (mem, str(workers)),
        fetch="none",
    )
    started = time.perf_counter()
    built = yield Query("SELECT llmbase.build_collection_index(%s)", (c.id,), fetch="one", tuples=True)
    seconds = time.perf_counter() - started
    size = yield Query(
        "SELECT coalesce(pg_relation_size(to_regclass(format('llmbase.%%I', %s::text))), 0)",
        (built[0],),
        fetch="one",
        tuples=True,
    )
    return ReindexResult(
        collection=c.name,
        index=built[0],
        index_bytes=int(size[0]),
        seconds=round(seconds, 3),
        chunks=int(count[0]),
        maintenance_work_mem=mem,
        workers=workers,
    )


def stats(ctx: Ctx, collection: UUID | str | None = None) -> Plan[list[CollectionStats]]:
    """Counts (of what the scope may read) and sizes of the tenant's collections, or one."""
    if ctx.scope.admin:
        raise TenantMissing("stats are read through a tenant or user client")
    tid = ctx.scope.require_tenant()
    where: sql.Composable = sql.SQL("c.tenant_id = %s")
    params: list[Any] = [tid]
    if collection is not None:
        c = yield from get(ctx, collection)
        where = sql.SQL("c.tenant_id = %s AND c.id = %s")
        params.append(c.id)
    rows = yield Query(
        sql.SQL(
            "SELECT c.name, d.documents, ch.chunks, ch.embedded_chunks,"
            " coalesce(pg_table_size(p.oid), 0) AS table_bytes, coalesce(pg_indexes_size(p.oid), 0) AS index_bytes,"
            " i.relname::text AS vector_index, coalesce(pg_relation_size(i.oid), 0) AS vector_index_bytes,"
            " c.dimension, c.distance, c.storage, c.index_type"
            " FROM llmbase.collections c"
            " LEFT JOIN pg_catalog.pg_class p ON p.oid = to_regclass(format('llmbase.%%I', c.partition_name))"
            " LEFT JOIN pg_catalog.pg_class i ON i.oid = to_regclass(format('llmbase.%%I', c.partition_name || '_vec'))"
            " CROSS JOIN LATERAL (SELECT count(*) AS documents FROM llmbase.documents"
            "   WHERE tenant_id = c.tenant_id AND collection_id = c.id) d"
            " CROSS JOIN LATERAL (SELECT count(*) AS chunks,"
            "   count(*) FILTER (WHERE embedding IS NOT NULL OR embedding_half IS NOT NULL) AS embedded_chunks"
            "   FROM llmbase.chunks WHERE tenant_id = c.tenant_id AND collection_id = c.id) ch"
            " WHERE {} ORDER BY c.name"
        ).format(where),
        params,
        row=CollectionStats,
    )
    return rows  # type: ignore[no-any-return]
