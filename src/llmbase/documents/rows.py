"""The document store's values: what callers pass in and get back.

Shared by the write path (collections, documents, chunks), search and the CLI; the schema
they map to is migration 0005 (docs/schema.md, docs/documents.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

__all__ = [
    "Chunk",
    "ChunkInput",
    "Collection",
    "CollectionStats",
    "Distance",
    "Document",
    "DocumentInput",
    "Hit",
    "IndexType",
    "ReindexResult",
    "SearchMode",
    "SearchResult",
    "Storage",
    "WriteResult",
]

Distance = Literal["cosine", "l2", "inner_product"]
Storage = Literal["vector", "halfvec"]
IndexType = Literal["hnsw", "ivfflat", "none"]
SearchMode = Literal["vector", "text", "hybrid"]


@dataclass(frozen=True)
class Collection:
    """A row of llmbase.collections."""

    tenant_id: UUID
    id: UUID
    name: str
    embedding_model: str | None
    dimension: int
    distance: Distance
    storage: Storage
    index_type: IndexType
    hnsw_m: int
    hnsw_ef_construction: int
    ivfflat_lists: int
    language: str
    partition_name: str
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ChunkInput:
    """A chunk given by the caller (already split), optionally with its embedding."""

    content: str
    embedding: Sequence[float] | None = None
    metadata: Mapping[str, Any] | None = None
    token_count: int | None = None


@dataclass(frozen=True)
class DocumentInput:
    """A document to write: its whole text (chunked by the store) or its chunks.

    Upsert key: `external_id` (per collection and owner) when given, else the content
    hash. `user`: the owner (a user id or external id; a user scope always owns what it
    writes); None in a tenant-wide scope = shared with the tenant."""

    content: str | None = None
    chunks: Sequence[ChunkInput] | None = None
    external_id: str | None = None
    source: str | None = None
    title: str | None = None
    metadata: Mapping[str, Any] | None = None
    user: UUID | str | None = None
    is_public: bool = False


@dataclass(frozen=True)
class WriteResult:
    """What a write did: documents written (new or changed), unchanged ones skipped."""

    documents: int = 0
    chunks: int = 0
    skipped: int = 0
    deleted: int = 0
    document_ids: tuple[UUID, ...] = field(default=())


@dataclass(frozen=True)
class Hit:
    """One search result, best first. `score`: higher is better (cosine similarity,
    inner product, negative L2 distance, ts_rank, or the fused RRF score); `distance`:
    the vector distance when the vector side ranked it."""

    rank: int
    chunk_id: UUID
    document_id: UUID
    content: str
    metadata: dict[str, Any]
    score: float
    distance: float | None = None
    title: str | None = None
    source: str | None = None
    external_id: str | None = None
    position: int | None = None


@dataclass(frozen=True)
class SearchResult:
    """A search's hits and how they were found: `method` 'index' (HNSW/IVFFlat, iterative
    scan) or 'exact' (sequential distance computation: no index, or a very selective filter)."""

    hits: list[Hit]
    method: Literal["index", "exact"]
    mode: SearchMode
    candidates: int | None = None  # rows the filter estimate counted, when it was consulted
    latency_ms: float | None = None  # the plan's wall time, its queries included


@dataclass(frozen=True)
class Document:
    """A row of llmbase.documents."""

    tenant_id: UUID
    id: UUID
    collection_id: UUID
    user_id: UUID | None
    is_public: bool
    source: str | None
    title: str | None
    external_id: str | None
    content_hash: str
    metadata: dict[str, Any]
    chunk_count: int
    token_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Chunk:
    """A row of llmbase.chunks; `embedding` only when asked for (as floats)."""

    tenant_id: UUID
    collection_id: UUID
    id: UUID
    document_id: UUID
    user_id: UUID | None
    is_public: bool
    position: int
    content: str
    token_count: int | None
    metadata: dict[str, Any]
    language: str
    created_at: datetime
    embedding: list[float] | None = None


@dataclass(frozen=True)
class CollectionStats:
    """`llmbase docs stats`: sizes and counts of one collection."""

    name: str
    documents: int
    chunks: int
    embedded_chunks: int
    table_bytes: int
    index_bytes: int
    vector_index: str | None
    vector_index_bytes: int
    dimension: int
    distance: str
    storage: str
    index_type: str


@dataclass(frozen=True)
class ReindexResult:
    """`llmbase docs reindex`: the rebuilt vector index, its size and the build time."""

    collection: str
    index: str | None
    index_bytes: int
    seconds: float
    chunks: int
    maintenance_work_mem: str
    workers: int
