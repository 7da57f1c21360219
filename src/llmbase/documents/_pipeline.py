"""The collection handle's work, written once for the sync and async clients.

`add` and `search` are generators of steps: run a plan (`Call`), embed texts (`Embed`),
do CPU work such as chunking (`Work`, in a thread for async callers), queue a record
(`Enqueue`). `drive` and `adrive` execute the steps; nothing here touches a connection,
and chunking and embedding happen between transactions, never inside one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from .._ids import uuid7
from ..errors import ValidationError
from ..stores._common import parse_id
from . import _vectors, collections, write
from . import search as _search
from ._prepare import PreparedDoc, prepare
from .chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, chunk_text
from .embedders import Embedder, aembed, count_tokens, embed_all
from .rows import Collection, Hit, SearchMode, SearchResult, WriteResult

if TYPE_CHECKING:
    from ..client import _Core

__all__ = ["Call", "Embed", "Enqueue", "Work", "add", "adrive", "drive", "search"]

T = TypeVar("T")
MAX_BATCH = 100_000


@dataclass(frozen=True)
class Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Embed:
    texts: list[str]


@dataclass(frozen=True)
class Work:
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Enqueue:
    kind: str
    record: dict[str, Any]


Step = Call | Embed | Work | Enqueue
Steps = Generator[Step, Any, T]


def _no_embedder() -> ValidationError:
    return ValidationError(
        "this collection handle has no embedder: pass vectors, or client.collection(name, embedder=...)",
        field="embedder",
    )


def drive(core: _Core, embedder: Embedder | None, steps: Steps[T]) -> T:
    """Run the steps synchronously."""
    value: Any = None
    try:
        while True:
            step = steps.send(value)
            if isinstance(step, Call):
                value = core.run(step.fn, *step.args, **step.kwargs)
            elif isinstance(step, Embed):
                if embedder is None:
                    raise _no_embedder()
                value = embed_all(embedder, step.texts)
            elif isinstance(step, Work):
                value = step.fn(*step.args)
            else:
                from ..ingest.api import enqueue

                value = enqueue(core, step.kind, step.record)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def adrive(core: _Core, embedder: Embedder | None, steps: Steps[T]) -> T:
    """Run the steps from async code: plans awaited, embedding and CPU work off the loop."""
    value: Any = None
    try:
        while True:
            step = steps.send(value)
            if isinstance(step, Call):
                value = await core.arun(step.fn, *step.args, **step.kwargs)
            elif isinstance(step, Embed):
                if embedder is None:
                    raise _no_embedder()
                value = await aembed(embedder, step.texts)
                if len(value) != len(step.texts):
                    raise ValidationError(
                        f"the embedder returned {len(value)} vectors for {len(step.texts)} texts",
                        field="embedder",
                    )
            elif isinstance(step, Work):
                value = await asyncio.to_thread(step.fn, *step.args)
            else:
                from ..ingest.api import enqueue

                value = enqueue(core, step.kind, step.record)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


# -- add -------------------------------------------------------------------------------
def check_embedder(embedder: Embedder | None, collection: Collection) -> None:
    """An embedder must produce the collection's dimension (and model, when recorded)."""
    if embedder is None:
        return
    if embedder.dimension != collection.dimension:
        raise ValidationError(
            f"the embedder makes {embedder.dimension}-dimensional vectors,"
            f" collection {collection.name!r} holds {collection.dimension}",
            field="embedder",
        )
    if collection.embedding_model and embedder.model != collection.embedding_model:
        raise ValidationError(
            f"collection {collection.name!r} is embedded with {collection.embedding_model!r}, not {embedder.model!r}",
            field="embedder",
        )


def _positive(value: int, field: str, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
        raise ValidationError(f"must be an integer from 1 to {hi}", field=field)
    return value


def _chunk_all(
    pending: list[tuple[write.StagedDoc, str]], size: int, overlap: int, counter: Any
) -> list[list[write.StagedChunk]]:
    out = []
    for _, text in pending:
        out.append(
            [
                write.StagedChunk(c.position, c.content, c.token_count, None, None)
                for c in chunk_text(text, size=size, overlap=overlap, count=counter)
            ]
        )
    return out


def _staged(p: PreparedDoc, owner: UUID | None) -> write.StagedDoc:
    chunks = None
    if p.chunks is not None:
        chunks = [
            write.StagedChunk(j, c.content, c.token_count, c.metadata, c.embedding)
            for j, c in enumerate(p.chunks)
        ]
    return write.StagedDoc(
        id=uuid7(),
        user_id=owner,
        is_public=p.is_public,
        external_id=p.external_id,
        source=p.source,
        title=p.title,
        content_hash=p.content_hash,
        metadata_json=p.metadata_json,
        chunks=chunks,
    )


def add(
    collection: Collection,
    docs: Iterable[Any],
    *,
    embedder: Embedder | None,
    settings: Any,
    batch_size: int = 500,
    chunk_size: int | None = None,
    overlap: int | None = None,
    progress: Callable[[WriteResult], None] | None = None,
) -> Steps[WriteResult]:
    """Check everything, then per batch: skip unchanged documents, chunk, embed, write.
    `progress` is called after each batch with that batch's result."""
    check_embedder(embedder, collection)
    _positive(batch_size, "batch_size", MAX_BATCH)
    max_tokens = getattr(embedder, "MAX_TOKENS", None)
    size = chunk_size if chunk_size is not None else min(DEFAULT_SIZE, max_tokens or DEFAULT_SIZE)
    ov = overlap if overlap is not None else min(DEFAULT_OVERLAP, max(0, size // 5))
    chunk_text("", size=size, overlap=ov)  # checks size and overlap now
    counter = count_tokens(embedder)
    prepared = prepare(docs, collection, settings)
    if not prepared:
        return WriteResult()
    owners: dict[Any, UUID | None] = yield Call(write.resolve_owners, ([p.owner for p in prepared],))

    # One document per key (the last given wins); duplicates share its id in the result.
    keyed: dict[tuple[Any, ...], int] = {}
    slot_of: list[int] = []
    unique: list[tuple[write.StagedDoc, str | None]] = []
    for p in prepared:
        owner = owners[p.owner]
        key = (owner, "x", p.external_id) if p.external_id is not None else (owner, "h", p.content_hash)
        staged = _staged(p, owner)
        if key in keyed:
            unique[keyed[key]] = (staged, p.text)
        else:
            keyed[key] = len(unique)
            unique.append((staged, p.text))
        slot_of.append(keyed[key])

    ids: list[UUID | None] = [None] * len(unique)
    total = WriteResult()
    # A bulk load builds the vector index once at the end instead of row by row.
    incoming = sum(
        len(d.chunks) if d.chunks is not None else 1 + len(text or "") // (4 * size) for d, text in unique
    )
    suspended = yield Call(collections.suspend_index, (collection, incoming))
    for start in range(0, len(unique), batch_size):
        batch = unique[start : start + batch_size]
        skip: set[int] = set()
        needs_vectors = embedder is not None and any(
            text is not None or any(c.embedding is None for c in d.chunks or ()) for d, text in batch
        )
        if needs_vectors:  # unchanged documents cost no chunking and no embedding calls
            states = yield Call(write.classify, (collection, [d for d, _ in batch]))
            for j, st in states.items():
                if st.same:
                    skip.add(j)
                    ids[start + j] = st.id
        todo = [(j, d, text) for j, (d, text) in enumerate(batch) if j not in skip]
        pending = [(d, text) for _, d, text in todo if text is not None]
        if pending:
            chunked = yield Work(_chunk_all, (pending, size, ov, counter))
            for (d, _), chunks in zip(pending, chunked, strict=True):
                d.chunks = chunks
        if embedder is not None:
            missing = [c for _, d, _ in todo for c in d.chunks or () if c.embedding is None]
            if missing:
                vectors = yield Embed([c.content for c in missing])
                for c, v in zip(missing, vectors, strict=True):
                    c.embedding = _vectors.check_for(v, collection, field="embedder")
        for _, d, _ in todo:
            for c in d.chunks or ():
                if c.token_count is None:
                    c.token_count = (counter or _approx)([c.content])[0]
        result: WriteResult = yield Call(write.upsert, (collection, [d for _, d, _ in todo]))
        for (j, _, _), ident in zip(todo, result.document_ids, strict=True):
            ids[start + j] = ident
        batch_result = WriteResult(
            documents=result.documents,
            chunks=result.chunks,
            skipped=result.skipped + len(skip),
        )
        if progress is not None:
            progress(batch_result)
        total = WriteResult(
            documents=total.documents + batch_result.documents,
            chunks=total.chunks + batch_result.chunks,
            skipped=total.skipped + batch_result.skipped,
        )
        for _, d, _ in todo:
            d.chunks = None  # free the batch's vectors
    if suspended:  # dropped for this load, or missing after an interrupted one
        yield Call(collections.restore_index, (collection,))
    duplicates = len(prepared) - len(unique)
    return WriteResult(
        documents=total.documents,
        chunks=total.chunks,
        skipped=total.skipped + duplicates,
        document_ids=tuple(ids[s] for s in slot_of),  # type: ignore[misc]
    )


def _approx(texts: Sequence[str]) -> list[int]:
    from .chunking import approx_tokens

    return approx_tokens(texts)


# -- search ----------------------------------------------------------------------------
def _opt_id(value: UUID | str | None, field: str) -> UUID | None:
    return None if value is None else parse_id(value, field=field)


def search(
    collection: Collection,
    query: str | None,
    *,
    embedder: Embedder | None,
    vector: Sequence[float] | None = None,
    k: int = 10,
    threshold: float | None = None,
    filter: Mapping[str, Any] | None = None,
    mode: SearchMode = "vector",
    ef_search: int | None = None,
    exact: bool | None = None,
    conversation: UUID | str | None = None,
    message: UUID | str | None = None,
    request: UUID | str | None = None,
    log: bool = True,
) -> Steps[list[Hit]]:
    """Embed the query when a vector is needed and none is given, search, log the retrieval."""
    started = time.perf_counter()
    if mode not in ("vector", "text", "hybrid"):
        raise ValidationError("must be 'vector', 'text' or 'hybrid'", field="mode")
    ids = {
        "conversation_id": _opt_id(conversation, "conversation"),
        "message_id": _opt_id(message, "message"),
        "request_id": _opt_id(request, "request"),
    }
    if mode != "text" and vector is not None:  # checked here: before any connection is taken
        vector = _vectors.floats(_vectors.check_for(vector, collection, field="vector"))
    if mode != "text" and vector is None:
        if query is None:
            raise ValidationError("give a query text or a vector", field="query")
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("must be a non-empty string", field="query")
        if embedder is None:
            raise _no_embedder()
        check_embedder(embedder, collection)
        got = yield Embed([query])
        vector = _vectors.floats(_vectors.check_for(got[0], collection, field="embedder"))
    result: SearchResult = yield Call(
        _search.search,
        (collection,),
        {
            "vector": vector if mode != "text" else None,
            "text": query,
            "k": k,
            "threshold": threshold,
            "filter": filter,
            "mode": mode,
            "ef_search": ef_search,
            "exact": exact,
        },
    )
    if log:
        record = {
            "id": uuid7(),
            "collection_id": collection.id,
            "mode": mode,
            "method": result.method,
            "query": query,
            "filter": dict(filter) if filter else None,
            "k": k,
            "ef_search": ef_search,
            "threshold": threshold,
            **ids,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "results": [
                {
                    "rank": h.rank,
                    "chunk_id": h.chunk_id,
                    "document_id": h.document_id,
                    "score": h.score,
                    "distance": h.distance,
                }
                for h in result.hits
            ],
        }
        yield Enqueue("retrieval", record)
    return result.hits
