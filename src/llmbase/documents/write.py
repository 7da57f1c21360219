"""Writing documents and chunks: upsert (by external id, else content hash), delete.

Upsert, per document of a batch (one transaction):
- key: (collection, owner, external_id) when the document has an external id, else
  (collection, owner, content hash) among documents without one;
- unchanged (same content hash, metadata, title, source and public flag): skipped, no row
  written; changed: the document row is updated and its chunks replaced; new: inserted;
- concurrent writers of the same key serialise on a transaction advisory lock (keys
  hashed into LOCK_BUCKETS buckets per collection, so a batch takes at most 256 locks).

Chunks go in through the bulk path: a binary COPY into a temporary table (ON COMMIT DROP),
then one INSERT ... SELECT into llmbase.chunks. (PostgreSQL refuses COPY FROM into a table
with row-level security for anyone but its owner; INSERT ... SELECT applies the policies.)
Vectors travel as binary real[] and are cast to the collection's vector or halfvec type.

Everything here receives checked input (documents/_prepare.py and _vectors.py); the
caller-facing API is `client.collection(name).add(...)` (documents/store.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import sql

from ..errors import NotFound, PermissionDenied, TenantMissing, ValidationError
from ..stores import users
from ..stores._common import Ctx, parse_id
from ..stores._plan import Plan, Query
from . import _vectors
from .filters import compile_filter
from .rows import Collection, WriteResult

__all__ = ["StagedChunk", "StagedDoc", "classify", "delete", "resolve_owners", "upsert"]

_ZERO = UUID(int=0)
_LOCK_SPACE = 0x4C4D4443  # advisory lock class of document keys ("LMDC")
LOCK_BUCKETS = 256
_MAX_IDS = 10_000


@dataclass
class StagedChunk:
    position: int
    content: str
    token_count: int | None
    metadata: Mapping[str, Any] | None  # the chunk's own, merged over the document's
    embedding: bytes | None  # big-endian float4 (documents/_vectors.py)


@dataclass
class StagedDoc:
    """A document ready to write: owner resolved, chunks (when known) staged."""

    id: UUID  # used when the document is new
    user_id: UUID | None
    is_public: bool
    external_id: str | None
    source: str | None
    title: str | None
    content_hash: str
    metadata_json: str  # a JSON object
    chunks: list[StagedChunk] | None = None

    @property
    def token_count(self) -> int:
        return sum(c.token_count or 0 for c in self.chunks or ())


@dataclass(frozen=True)
class Existing:
    """What classify found for a document: its id, and whether nothing changed."""

    id: UUID
    same: bool


def _tenant(ctx: Ctx, collection: Collection) -> UUID:
    if ctx.scope.admin:
        raise TenantMissing("documents are written through a tenant or user client, not the operator scope")
    tid = ctx.scope.require_tenant()
    if collection.tenant_id != tid:
        raise NotFound("collection", collection.name)
    return tid


def _cid(collection: Collection) -> sql.Composable:
    """The collection id as a literal, so the chunks partition is pruned at plan time."""
    return sql.Literal(collection.id)


# -- owners ----------------------------------------------------------------------------
def resolve_owners(ctx: Ctx, refs: Sequence[UUID | str | None]) -> Plan[dict[UUID | str | None, UUID | None]]:
    """Owner per reference. A user scope owns everything it writes (naming another user is
    refused); a tenant-wide scope writes shared documents (None) or any user's (external
    ids are created on first use, like client.user())."""
    ctx.scope.require_tenant()
    me = ctx.scope.user_id
    out: dict[UUID | str | None, UUID | None] = {}
    for ref in dict.fromkeys(refs):
        if me is not None:
            if ref is None or ref == me:
                out[ref] = me
                continue
            if isinstance(ref, str):
                row = yield Query(
                    "SELECT id FROM llmbase.users WHERE external_id = %s",
                    (ref,),
                    fetch="optional",
                    tuples=True,
                )
                if row is not None and row[0] == me:
                    out[ref] = me
                    continue
            raise PermissionDenied("a user writes only their own documents (leave `user` unset)")
        if ref is None or isinstance(ref, UUID):
            out[ref] = ref
        else:
            user = yield from users.ensure(ctx, ref)
            out[ref] = user.id
    return out


# -- classify --------------------------------------------------------------------------
_FOUND = (
    "SELECT id, user_id, external_id, content_hash, metadata, title, source, is_public"
    " FROM llmbase.documents WHERE tenant_id = %s AND collection_id = {} AND "
)


def _classified(collection: Collection, tid: UUID, docs: Sequence[StagedDoc]) -> Plan[dict[int, Existing]]:
    """Which of `docs` exist (by position) and which of those are unchanged.

    Single-table lookups by key arrays (`external_id = ANY(...)` on documents_external,
    `content_hash = ANY(...)` on documents_hash), matched and compared here: no join whose
    plan could go quadratic while the statistics lag behind a large import; at worst one
    pass over the collection's rows per batch."""
    cid = _cid(collection)
    by_ext: dict[tuple[UUID, str], int] = {}
    by_hash: dict[tuple[UUID, str], int] = {}
    for i, d in enumerate(docs):
        owner = d.user_id or _ZERO
        if d.external_id is not None:
            by_ext[(owner, d.external_id)] = i
        else:
            by_hash[(owner, d.content_hash)] = i
    rows: list[tuple[Any, ...]] = []
    if by_ext:
        owners = sorted({o for o, _ in by_ext}, key=str)
        rows += yield Query(
            sql.SQL(_FOUND + "coalesce(user_id, %s) = ANY(%s) AND external_id = ANY(%s)").format(cid),
            (tid, _ZERO, owners, sorted({e for _, e in by_ext})),
            tuples=True,
        )
    if by_hash:
        rows += yield Query(
            sql.SQL(_FOUND + "content_hash = ANY(%s) AND external_id IS NULL").format(cid),
            (tid, sorted({h for _, h in by_hash})),
            tuples=True,
        )
    out: dict[int, Existing] = {}
    for ident, user_id, ext, digest, metadata, title, source, is_public in rows:
        owner = user_id or _ZERO
        pos = by_ext.get((owner, ext)) if ext is not None else by_hash.get((owner, digest))
        if pos is None:
            continue  # another owner's document with the same key
        d = docs[pos]
        same = (
            digest == d.content_hash
            and title == d.title
            and source == d.source
            and is_public == d.is_public
            and metadata == json.loads(d.metadata_json)
        )
        if pos not in out or same:  # duplicates by hash (never written here): an unchanged one wins
            out[pos] = Existing(ident, same)
    return out


def classify(ctx: Ctx, collection: Collection, docs: Sequence[StagedDoc]) -> Plan[dict[int, Existing]]:
    """Which of `docs` exist already (by position), and which of those are unchanged: read
    before chunking and embedding, so unchanged documents cost no embedding calls."""
    tid = _tenant(ctx, collection)
    if not docs:
        return {}
    return (yield from _classified(collection, tid, docs))


# -- upsert ----------------------------------------------------------------------------
_CHUNKS_TEMP = sql.SQL(
    "CREATE TEMP TABLE _llmbase_chunks_in (document_id uuid, user_id uuid, is_public bool, position int4,"
    " content text, token_count int4, metadata jsonb, embedding real[]) ON COMMIT DROP"
)
_CHUNKS_COPY = sql.SQL(
    "COPY _llmbase_chunks_in (document_id, user_id, is_public, position, content, token_count, metadata,"
    " embedding) FROM STDIN (FORMAT BINARY)"
)
# jsonb and real[] go as bytes already in their binary format (see _vectors.pack)
_CHUNK_TYPES = ("uuid", "uuid", "bool", "int4", "text", "int4", "bytea", "bytea")


def _jsonb(text: str) -> bytes:
    return b"\x01" + text.encode()  # jsonb's binary format: version 1, then the JSON text


def _chunk_rows(docs: Sequence[tuple[UUID, StagedDoc]]) -> Iterator[tuple[Any, ...]]:
    for ident, d in docs:
        doc_meta = _jsonb(d.metadata_json)
        parsed: dict[str, Any] | None = None
        for c in d.chunks or ():
            meta = doc_meta
            if c.metadata:  # the chunk's keys over the document's
                parsed = json.loads(d.metadata_json) if parsed is None else parsed
                merged = json.dumps({**parsed, **c.metadata}, ensure_ascii=False, separators=(",", ":"))
                meta = _jsonb(merged)
            emb = _vectors.pack(c.embedding) if c.embedding is not None else None
            yield (ident, d.user_id, d.is_public, c.position, c.content, c.token_count, meta, emb)


def _lock_keys(collection: Collection, docs: Sequence[StagedDoc]) -> list[int]:
    """Advisory lock keys of the documents' upsert keys, hashed into LOCK_BUCKETS buckets per
    collection: a transaction takes at most that many locks however large its batch (the
    lock table is shared and small), writers of disjoint keys rarely wait for each other,
    and keys are locked in sorted order (no deadlocks)."""
    base = int.from_bytes(hashlib.blake2b(collection.id.bytes, digest_size=3).digest(), "big") << 8
    keys = set()
    for d in docs:
        key = f"{d.user_id or _ZERO}|" + (
            "x:" + d.external_id if d.external_id is not None else "h:" + d.content_hash
        )
        keys.add(hashlib.blake2b(key.encode(), digest_size=1).digest()[0] % LOCK_BUCKETS)
        if len(keys) == LOCK_BUCKETS:
            break
    return sorted((base | k) - (1 << 31) for k in keys)  # as int4


def _doc_arrays(docs: Sequence[tuple[UUID, StagedDoc]]) -> dict[str, list[Any]]:
    return {
        "id": [i for i, _ in docs],
        "user": [d.user_id for _, d in docs],
        "pub": [d.is_public for _, d in docs],
        "source": [d.source for _, d in docs],
        "title": [d.title for _, d in docs],
        "ext": [d.external_id for _, d in docs],
        "hash": [d.content_hash for _, d in docs],
        "meta": [d.metadata_json for _, d in docs],
        "nchunks": [len(d.chunks or ()) for _, d in docs],
        "tokens": [d.token_count for _, d in docs],
    }


_UNNEST_DOCS = sql.SQL(
    "unnest(%(id)s::uuid[], %(user)s::uuid[], %(pub)s::bool[], %(source)s::text[], %(title)s::text[],"
    " %(ext)s::text[], %(hash)s::text[], %(meta)s::text[], %(nchunks)s::int4[], %(tokens)s::int8[])"
    " AS u(id, user_id, is_public, source, title, external_id, content_hash, metadata, chunk_count, token_count)"
)


def upsert(ctx: Ctx, collection: Collection, docs: Sequence[StagedDoc]) -> Plan[WriteResult]:
    """Write one batch (see the module docstring). `docs` must have their chunks staged and
    distinct keys. `document_ids` of the result follow the order of `docs`."""
    tid = _tenant(ctx, collection)
    if not docs:
        return WriteResult()
    cid = _cid(collection)
    yield Query(
        "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int4[]) AS k",
        (_LOCK_SPACE, _lock_keys(collection, docs)),
        fetch="none",
    )
    states = yield from _classified(collection, tid, docs)
    ids = [states[i].id if i in states else d.id for i, d in enumerate(docs)]
    changed = [(ids[i], d) for i, d in enumerate(docs) if i in states and not states[i].same]
    new = [(ids[i], d) for i, d in enumerate(docs) if i not in states]
    if changed:
        yield Query(
            sql.SQL(
                "DELETE FROM llmbase.chunks WHERE tenant_id = %s AND collection_id = {} AND document_id = ANY(%s)"
            ).format(cid),
            (tid, [i for i, _ in changed]),
            fetch="none",
        )
        yield Query(
            sql.SQL(
                "UPDATE llmbase.documents d SET is_public = u.is_public, source = u.source, title = u.title,"
                " content_hash = u.content_hash, metadata = u.metadata::jsonb, chunk_count = u.chunk_count,"
                " token_count = u.token_count FROM {} WHERE d.tenant_id = %(t)s AND d.id = u.id"
            ).format(_UNNEST_DOCS),
            {**_doc_arrays(changed), "t": tid},
            fetch="none",
        )
    if new:
        yield Query(
            sql.SQL(
                "INSERT INTO llmbase.documents (tenant_id, id, collection_id, user_id, is_public, source, title,"
                " external_id, content_hash, metadata, chunk_count, token_count)"
                " SELECT %(t)s, u.id, {cid}, u.user_id, u.is_public, u.source, u.title, u.external_id,"
                " u.content_hash, u.metadata::jsonb, u.chunk_count, u.token_count FROM {unnest}"
            ).format(cid=cid, unnest=_UNNEST_DOCS),
            {**_doc_arrays(new), "t": tid},
            fetch="none",
            fk_not_found=NotFound("user", "(a document's owner)"),
        )
    written = changed + new
    chunks = 0
    if any(d.chunks for _, d in written):
        vs = yield Query("SELECT llmbase.vector_schema()::text", fetch="one", tuples=True)
        # PostgreSQL 18 reads temporary tables ahead by effective_io_concurrency buffers; with
        # the embedded server's 64 a few thousand chunks exhaust the session's temp_buffers
        # ("no empty local buffer available"). Local buffers need no read-ahead.
        yield Query("SELECT set_config('effective_io_concurrency', '1', true)", fetch="none")
        yield Query(_CHUNKS_TEMP, fetch="none")
        yield Query(_CHUNKS_COPY, copy_rows=_chunk_rows(written), copy_types=_CHUNK_TYPES)
        col = "embedding" if collection.storage == "vector" else "embedding_half"
        chunks = yield Query(
            sql.SQL(
                "INSERT INTO llmbase.chunks (tenant_id, collection_id, document_id, user_id, is_public, position,"
                " content, token_count, metadata, {col}, language)"
                " SELECT %s, {cid}, document_id, user_id, is_public, position, content, token_count, metadata,"
                " embedding::{vs}.{storage}, %s::regconfig FROM _llmbase_chunks_in"
            ).format(
                col=sql.Identifier(col),
                cid=cid,
                vs=sql.Identifier(vs[0]),
                storage=sql.Identifier(collection.storage),
            ),
            (tid, collection.language),
            fetch="rowcount",
        )
    return WriteResult(
        documents=len(written),
        chunks=chunks,
        skipped=len(docs) - len(written),
        document_ids=tuple(ids),
    )


# -- delete ----------------------------------------------------------------------------
def delete(
    ctx: Ctx,
    collection: Collection,
    *,
    ids: Sequence[UUID | str] | None = None,
    filter: Mapping[str, Any] | None = None,
    mine: bool = False,
) -> Plan[int]:
    """Delete documents (their chunks go with them) by id, by metadata filter (the filter
    language of docs/documents.md, on the documents' metadata), or all of the current
    user's (`mine=True`). Given together, the conditions must all hold. Only documents
    the scope may write are deleted (a user: their own). Returns how many."""
    tid = _tenant(ctx, collection)
    where: list[sql.Composable] = [
        sql.SQL("tenant_id = %s"),
        sql.SQL("collection_id = {}").format(_cid(collection)),
    ]
    params: list[Any] = [tid]
    if ids is None and filter is None and not mine:
        raise ValidationError("say what to delete: ids, filter or mine=True", field="delete")
    if ids is not None:
        if isinstance(ids, str | UUID) or not isinstance(ids, Sequence):
            raise ValidationError("must be a list of document ids", field="ids")
        if len(ids) > _MAX_IDS:
            raise ValidationError(f"at most {_MAX_IDS} ids at once", field="ids")
        where.append(sql.SQL("id = ANY(%s)"))
        params.append([parse_id(i, field="ids") for i in ids])
    if filter is not None:
        if not isinstance(filter, Mapping) or not filter:
            raise ValidationError(
                "must be a non-empty filter (deleting everything needs ids or mine=True)", field="filter"
            )
        cond, fparams = compile_filter(filter, column=sql.Identifier("metadata"))
        where.append(cond)
        params.extend(fparams)
    if mine:
        where.append(sql.SQL("user_id = %s"))
        params.append(ctx.scope.require_user())
    n = yield Query(
        sql.SQL("DELETE FROM llmbase.documents WHERE {}").format(sql.SQL(" AND ").join(where)),
        params,
        fetch="rowcount",
    )
    return n  # type: ignore[no-any-return]
