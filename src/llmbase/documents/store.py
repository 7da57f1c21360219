"""The document store on the clients: `client.collections` and `client.collection(name)`.

    docs = client.collection("handbook", embedder=LocalEmbedder())
    docs.add([{"text": open("intro.md").read(), "id": "intro.md"}])
    hits = docs.search("how do I reset my password?", k=5, filter={"lang": "en"})

Sync and async twins run the same plans (collections.py, write.py, search.py) and the same
pipelines (_pipeline.py); the classes below only choose how to execute them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ..errors import NotFound
from ..stores._bind import AsyncStore, Store, aop, op
from ..stores._common import Page
from . import _pipeline, collections, search, write
from .embedders import Embedder
from .rows import Chunk, Collection, CollectionStats, Document, Hit, ReindexResult, SearchMode, WriteResult

if TYPE_CHECKING:
    from ..client import _Core

__all__ = ["AsyncCollectionHandle", "AsyncCollections", "CollectionHandle", "Collections"]


class Collections(Store):
    """The tenant's collections: create (tenant-wide client), get, list, drop, stats, reindex."""

    create = op(collections.create)
    get = op(collections.get)
    list = op(collections.list_)
    drop = op(collections.drop)
    stats = op(collections.stats)

    def reindex(self, collection: UUID | str, *, tenant: UUID | None = None, **options: Any) -> ReindexResult:
        """Rebuild the vector index (operator task: the root client or client.admin()).
        Options: m, ef_construction, lists, maintenance_work_mem, workers."""
        core = self._client
        operator = core.operator()
        if tenant is None and not core.is_admin:
            tenant = core.scope().tenant_id
        return operator.run(collections.reindex, collection, tenant=tenant, **options)


class AsyncCollections(AsyncStore):
    create = aop(collections.create)
    get = aop(collections.get)
    list = aop(collections.list_)
    drop = aop(collections.drop)
    stats = aop(collections.stats)

    async def reindex(
        self, collection: UUID | str, *, tenant: UUID | None = None, **options: Any
    ) -> ReindexResult:
        core = self._client
        operator = core.operator()
        if tenant is None and not core.is_admin:
            tenant = (await core.ascope()).tenant_id
        return await operator.arun(collections.reindex, collection, tenant=tenant, **options)


class _Handle:
    def __init__(
        self,
        core: _Core,
        collection: str | UUID | Collection,
        embedder: Embedder | None = None,
        *,
        log: bool = True,
    ) -> None:
        self._core = core
        self._ref = collection
        self._info = collection if isinstance(collection, Collection) else None
        self.embedder = embedder
        self.log = log

    def __repr__(self) -> str:
        name = self._info.name if self._info else self._ref
        return f"<{type(self).__name__} {name!s} embedder={self.embedder!r}>"

    @staticmethod
    def _same(doc: Document, c: Collection, document_id: UUID | str) -> Document:
        if doc.collection_id != c.id:
            raise NotFound("document", document_id)
        return doc


class CollectionHandle(_Handle):
    """One collection, for writing and searching (sync)."""

    def info(self) -> Collection:
        """The collection's row (looked up once, then cached)."""
        if self._info is None:
            self._info = self._core.run(collections.get, self._ref)
        return self._info

    def add(
        self,
        docs: Iterable[Any],
        *,
        batch_size: int = 500,
        chunk_size: int | None = None,
        overlap: int | None = None,
        progress: Callable[[WriteResult], None] | None = None,
    ) -> WriteResult:
        """Upsert documents (DocumentInput, mappings or strings): chunk and embed outside any
        transaction, skip unchanged ones, write in batches of `batch_size` documents."""
        steps = _pipeline.add(
            self.info(),
            docs,
            embedder=self.embedder,
            settings=self._core.settings,
            batch_size=batch_size,
            chunk_size=chunk_size,
            overlap=overlap,
            progress=progress,
        )
        return _pipeline.drive(self._core, self.embedder, steps)

    def search(
        self,
        query: str | None = None,
        *,
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
    ) -> list[Hit]:
        """The k best chunks for a query text (embedded with the handle's embedder) or a
        vector; every search is recorded in the retrieval log with what it served."""
        steps = _pipeline.search(
            self.info(),
            query,
            embedder=self.embedder,
            vector=vector,
            k=k,
            threshold=threshold,
            filter=filter,
            mode=mode,
            ef_search=ef_search,
            exact=exact,
            conversation=conversation,
            message=message,
            request=request,
            log=self.log,
        )
        return _pipeline.drive(self._core, self.embedder, steps)

    def delete(
        self,
        ids: Sequence[UUID | str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        mine: bool = False,
    ) -> int:
        """Delete documents by id, by metadata filter, or all of the current user's."""
        return self._core.run(write.delete, self.info(), ids=ids, filter=filter, mine=mine)

    def get(self, document_id: UUID | str) -> Document:
        """One document of this collection (NotFound when missing or not visible)."""
        c = self.info()
        return self._same(self._core.run(search.get_document, document_id), c, document_id)

    def chunks(self, document_id: UUID | str, *, embeddings: bool = False) -> list[Chunk]:
        """A document's chunks in order (`embeddings=True`: with their vectors)."""
        c = self.info()
        rows = self._core.run(search.document_chunks, document_id, embeddings=embeddings)
        return [ch for ch in rows if ch.collection_id == c.id]

    def documents(self, **options: Any) -> Page[Document]:
        """Documents, newest first: limit, cursor, filter, user_id, shared."""
        return self._core.run(search.list_documents, self.info(), **options)

    def stats(self) -> CollectionStats:
        return self._core.run(collections.stats, self.info().id)[0]


class AsyncCollectionHandle(_Handle):
    """One collection, for writing and searching (async): the same operations, awaited."""

    async def info(self) -> Collection:
        if self._info is None:
            self._info = await self._core.arun(collections.get, self._ref)
        return self._info

    async def add(
        self,
        docs: Iterable[Any],
        *,
        batch_size: int = 500,
        chunk_size: int | None = None,
        overlap: int | None = None,
        progress: Callable[[WriteResult], None] | None = None,
    ) -> WriteResult:
        steps = _pipeline.add(
            await self.info(),
            docs,
            embedder=self.embedder,
            settings=self._core.settings,
            batch_size=batch_size,
            chunk_size=chunk_size,
            overlap=overlap,
            progress=progress,
        )
        return await _pipeline.adrive(self._core, self.embedder, steps)

    async def search(
        self,
        query: str | None = None,
        *,
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
    ) -> list[Hit]:
        steps = _pipeline.search(
            await self.info(),
            query,
            embedder=self.embedder,
            vector=vector,
            k=k,
            threshold=threshold,
            filter=filter,
            mode=mode,
            ef_search=ef_search,
            exact=exact,
            conversation=conversation,
            message=message,
            request=request,
            log=self.log,
        )
        return await _pipeline.adrive(self._core, self.embedder, steps)

    async def delete(
        self,
        ids: Sequence[UUID | str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        mine: bool = False,
    ) -> int:
        return await self._core.arun(write.delete, await self.info(), ids=ids, filter=filter, mine=mine)

    async def get(self, document_id: UUID | str) -> Document:
        c = await self.info()
        return self._same(await self._core.arun(search.get_document, document_id), c, document_id)

    async def chunks(self, document_id: UUID | str, *, embeddings: bool = False) -> list[Chunk]:
        c = await self.info()
        rows = await self._core.arun(search.document_chunks, document_id, embeddings=embeddings)
        return [ch for ch in rows if ch.collection_id == c.id]

    async def documents(self, **options: Any) -> Page[Document]:
        return await self._core.arun(search.list_documents, await self.info(), **options)

    async def stats(self) -> CollectionStats:
        return (await self._core.arun(collections.stats, (await self.info()).id))[0]
