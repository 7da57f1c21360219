"""Documents as the caller gives them, checked and normalised before any database work.

Everything that can be wrong with the input is found here, for the whole call, before
the first batch is written: types, sizes, empty text, metadata, caller-supplied vectors
(documents/_vectors.py). Text follows the documented rule of llmbase/_sanitize.py: NUL
characters and lone surrogates become U+FFFD in content, titles, sources, external ids
and metadata, so the stored text and its hash are of the cleaned text.

Content hash (the dedupe key when there is no external id): sha256 of the cleaned text
for a document given as `content`; for one given as `chunks`, sha256 of the JSON list of
[content, metadata] pairs. Vectors are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

from .._sanitize import bounded_text, clean_json, clean_text, json_object
from ..config import Settings
from ..errors import PayloadTooLarge, ValidationError
from . import _vectors
from .rows import ChunkInput, Collection, DocumentInput

__all__ = ["MAX_CHUNKS", "MAX_DOCUMENT_CHARS", "PreparedChunk", "PreparedDoc", "prepare"]

MAX_DOCUMENT_CHARS = 50_000_000
MAX_CHUNKS = 100_000
_SHORT = 2000  # source, title, external_id (the schema's limit)
_ALIASES = {"text": "content", "id": "external_id", "public": "is_public"}
_DOC_FIELDS = {f.name for f in fields(DocumentInput)}
_CHUNK_FIELDS = {f.name for f in fields(ChunkInput)}


@dataclass
class PreparedChunk:
    content: str
    embedding: bytes | None  # big-endian float4 (documents/_vectors.py)
    metadata: dict[str, Any] | None
    token_count: int | None


@dataclass
class PreparedDoc:
    index: int  # in the caller's list
    owner: UUID | str | None
    is_public: bool
    external_id: str | None
    source: str | None
    title: str | None
    metadata_json: str
    content_hash: str
    text: str | None  # to be chunked
    chunks: list[PreparedChunk] | None  # given by the caller

    @property
    def needs_vectors(self) -> bool:
        return self.chunks is None or any(c.embedding is None for c in self.chunks)


def _as_input(value: Any, i: int) -> DocumentInput:
    if isinstance(value, DocumentInput):
        return value
    if isinstance(value, str):
        return DocumentInput(content=value)
    if isinstance(value, Mapping):
        kwargs: dict[str, Any] = {_ALIASES.get(str(k), str(k)): v for k, v in value.items()}
        unknown = set(kwargs) - _DOC_FIELDS
        if unknown:
            raise ValidationError(f"unknown fields {sorted(unknown)}", field=f"documents[{i}]")
        return DocumentInput(**kwargs)
    raise ValidationError("must be a DocumentInput, a mapping or a string", field=f"documents[{i}]")


def _as_chunk(value: Any, field: str) -> ChunkInput:
    if isinstance(value, ChunkInput):
        return value
    if isinstance(value, str):
        return ChunkInput(content=value)
    if isinstance(value, Mapping):
        kwargs = {("content" if k == "text" else k): v for k, v in value.items()}
        unknown = set(kwargs) - _CHUNK_FIELDS
        if unknown:
            raise ValidationError(f"unknown fields {sorted(unknown)}", field=field)
        return ChunkInput(**kwargs)
    raise ValidationError("must be a ChunkInput, a mapping or a string", field=field)


def _opt(value: Any, field: str) -> str | None:
    if value is None:
        return None
    return bounded_text(value, field=field, max_chars=_SHORT)


def _owner(value: Any, field: str) -> UUID | str | None:
    if value is None or isinstance(value, UUID):
        return value
    if isinstance(value, str) and value.strip():
        return bounded_text(value, field=field, max_chars=256)
    raise ValidationError("must be a user id or external id", field=field)


def _metadata(value: Any, field: str, settings: Settings) -> str:
    return json_object(value, field=field, max_bytes=settings.max_metadata_bytes)


def _chunk(
    value: Any, field: str, collection: Collection, settings: Settings
) -> tuple[PreparedChunk, list[Any]]:
    c = _as_chunk(value, field)
    if not isinstance(c.content, str):
        raise ValidationError("must be a string", field=f"{field}.content")
    if len(c.content) > settings.max_content_chars:
        raise PayloadTooLarge(
            f"longer than {settings.max_content_chars} characters", field=f"{field}.content"
        )
    content = clean_text(c.content)
    if not content.strip():
        raise ValidationError("is empty", field=f"{field}.content")
    emb = None
    if c.embedding is not None:
        emb = _vectors.check_for(c.embedding, collection, field=f"{field}.embedding")
    meta = None
    if c.metadata is not None:
        _metadata(c.metadata, f"{field}.metadata", settings)  # type and size
        meta = clean_json(c.metadata)
    tokens = c.token_count
    if tokens is not None and (
        not isinstance(tokens, int) or isinstance(tokens, bool) or not 0 <= tokens < 2**31
    ):
        raise ValidationError("must be a non-negative integer", field=f"{field}.token_count")
    return PreparedChunk(content, emb, meta or None, tokens), [content, meta or {}]


def _one(value: Any, i: int, collection: Collection, settings: Settings) -> PreparedDoc:
    d = _as_input(value, i)
    field = f"documents[{i}]"
    if (d.content is None) == (d.chunks is None):
        raise ValidationError("give either content or chunks", field=field)
    if not isinstance(d.is_public, bool):
        raise ValidationError("must be a bool", field=f"{field}.is_public")
    meta_json = _metadata(d.metadata, f"{field}.metadata", settings)
    text: str | None = None
    chunks: list[PreparedChunk] | None = None
    if d.content is not None:
        if not isinstance(d.content, str):
            raise ValidationError("must be a string", field=f"{field}.content")
        if len(d.content) > MAX_DOCUMENT_CHARS:
            raise PayloadTooLarge(f"longer than {MAX_DOCUMENT_CHARS} characters", field=f"{field}.content")
        text = clean_text(d.content)
        if not text.strip():
            raise ValidationError("is empty", field=f"{field}.content")
        digest = hashlib.sha256(text.encode()).hexdigest()
    else:
        if isinstance(d.chunks, str | bytes | Mapping) or not isinstance(d.chunks, Iterable):
            raise ValidationError("must be a list of chunks", field=f"{field}.chunks")
        items = list(d.chunks)
        if not items:
            raise ValidationError("is empty", field=f"{field}.chunks")
        if len(items) > MAX_CHUNKS:
            raise PayloadTooLarge(f"more than {MAX_CHUNKS} chunks", field=f"{field}.chunks")
        pairs = [_chunk(c, f"{field}.chunks[{j}]", collection, settings) for j, c in enumerate(items)]
        chunks = [p[0] for p in pairs]
        canon = json.dumps([p[1] for p in pairs], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canon.encode()).hexdigest()
    return PreparedDoc(
        index=i,
        owner=_owner(d.user, f"{field}.user"),
        is_public=d.is_public,
        external_id=_opt(d.external_id, f"{field}.external_id"),
        source=_opt(d.source, f"{field}.source"),
        title=_opt(d.title, f"{field}.title"),
        metadata_json=meta_json,
        content_hash=digest,
        text=text,
        chunks=chunks,
    )


def prepare(docs: Iterable[Any], collection: Collection, settings: Settings) -> list[PreparedDoc]:
    """Check and normalise every document; the first problem raises ValidationError."""
    if isinstance(docs, str | bytes | Mapping | DocumentInput):
        docs = [docs]
    return [_one(d, i, collection, settings) for i, d in enumerate(docs)]
