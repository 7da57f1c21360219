"""The document store: `/v1/collections` (list, create, get, stats, drop) and per
collection `documents` (add as JSON, list, get, chunks, delete by id or filter) and
`search` (vector, text or hybrid, with metadata filters; docs/documents.md). The server has
no embedder: give vectors, or search by text (`mode: text`)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, File, Form, Path, Response, UploadFile

from ...documents.rows import Chunk, Collection, CollectionStats, Document, Hit, WriteResult
from ...errors import ValidationError
from ..auth import Principal, require
from ..schemas import AddDocuments, CollectionIn, Count, DeleteDocuments, Page, SearchIn
from ._common import ERRORS, Cursor, Limit, page, paginate

router = APIRouter(prefix="/v1/collections", tags=["documents"], responses=ERRORS)

Name = Annotated[str, Path(min_length=1, max_length=100, description="Collection name or id.")]


def _ref(name: str) -> UUID | str:
    try:
        return UUID(name)
    except ValueError:
        return name


@router.get("", response_model=Page[Collection])
def list_collections(
    limit: Limit = 100, cursor: Cursor = None, principal: Principal = require("read")
) -> dict[str, Any]:
    """The tenant's collections by name."""
    return paginate(principal.client.collections.list(), limit, cursor)


@router.post("", response_model=Collection, status_code=201)
def create_collection(body: CollectionIn, principal: Principal = require("write")) -> Collection:
    """A new collection (a tenant-wide key; 409 when the name exists)."""
    args = body.model_dump(exclude_none=True)
    return principal.client.collections.create(args.pop("name"), args.pop("dimension"), **args)


@router.get("/{collection}", response_model=Collection)
def get_collection(collection: Name, principal: Principal = require("read")) -> Collection:
    return principal.client.collections.get(_ref(collection))


@router.get("/{collection}/stats", response_model=CollectionStats)
def collection_stats(collection: Name, principal: Principal = require("read")) -> CollectionStats:
    """Documents and chunks the key may see, sizes of the table and indexes."""
    return principal.client.collection(_ref(collection)).stats()


@router.delete("/{collection}", status_code=204, response_class=Response)
def drop_collection(collection: Name, principal: Principal = require("write")) -> Response:
    """Drop the collection with its documents, chunks and index."""
    c = principal.client.collections.get(_ref(collection))
    principal.client.collections.drop(c.id)
    return Response(status_code=204)


@router.post("/{collection}/documents", response_model=WriteResult)
def add_documents(
    collection: Name, body: AddDocuments, principal: Principal = require("write")
) -> WriteResult:
    """Upsert documents: each with `content` (chunked by the server; stored without vectors)
    or `chunks` (`content`, `embedding`, `metadata`), plus `external_id`, `title`, `source`,
    `metadata`, `user`, `is_public`. All are checked before anything is written."""
    handle = principal.client.collection(_ref(collection))
    return handle.add(body.documents, chunk_size=body.chunk_size, overlap=body.overlap)


_TEXT_SUFFIXES = (".txt", ".md", ".markdown")
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


def _file_doc(name: str, data: bytes, metadata: dict[str, Any]) -> dict[str, Any]:
    if not name.lower().endswith(_TEXT_SUFFIXES):
        raise ValidationError("upload .txt or .md files", field="files")
    text = data.decode("utf-8", errors="replace")
    heading = _HEADING.search(text) if name.lower().endswith((".md", ".markdown")) else None
    title = heading.group(1)[:2000] if heading else name[:2000]
    return {
        "content": text,
        "external_id": name[:2000],
        "title": title,
        "source": name[:2000],
        "metadata": metadata,
    }


@router.post("/{collection}/files", response_model=WriteResult)
def upload_files(
    collection: Name,
    files: Annotated[list[UploadFile], File(description="Text or Markdown files (UTF-8).")],
    metadata: Annotated[str | None, Form(max_length=100_000, description="A JSON object.")] = None,
    principal: Principal = require("write"),
) -> WriteResult:
    """Upload `.txt` / `.md` files (multipart): one document per file, its name as external
    id (uploading it again replaces it; unchanged files are skipped), a Markdown file's
    first `# heading` as title. Chunked by the server, stored without vectors."""
    meta: Any = {}
    if metadata:
        try:
            meta = json.loads(metadata)
        except ValueError:
            raise ValidationError("must be a JSON object", field="metadata") from None
        if not isinstance(meta, dict):
            raise ValidationError("must be a JSON object", field="metadata")
    docs = [_file_doc(f.filename or "upload.txt", f.file.read(), meta) for f in files]
    if not docs:
        raise ValidationError("no files", field="files")
    return principal.client.collection(_ref(collection)).add(docs)


@router.get("/{collection}/documents", response_model=Page[Document])
def list_documents(
    collection: Name, limit: Limit = 50, cursor: Cursor = None, principal: Principal = require("read")
) -> dict[str, Any]:
    """Documents, newest first."""
    return page(principal.client.collection(_ref(collection)).documents(limit=limit, cursor=cursor))


@router.get("/{collection}/documents/{document_id}", response_model=Document)
def get_document(collection: Name, document_id: UUID, principal: Principal = require("read")) -> Document:
    return principal.client.collection(_ref(collection)).get(document_id)


@router.get("/{collection}/documents/{document_id}/chunks", response_model=list[Chunk])
def document_chunks(
    collection: Name, document_id: UUID, principal: Principal = require("read")
) -> list[Chunk]:
    """The document's chunks in order (without vectors)."""
    handle = principal.client.collection(_ref(collection))
    handle.get(document_id)
    return handle.chunks(document_id)


@router.delete("/{collection}/documents/{document_id}", status_code=204, response_class=Response)
def delete_document(collection: Name, document_id: UUID, principal: Principal = require("write")) -> Response:
    handle = principal.client.collection(_ref(collection))
    handle.get(document_id)
    handle.delete([document_id])
    return Response(status_code=204)


@router.post("/{collection}/documents/delete", response_model=Count)
def delete_documents(
    collection: Name, body: DeleteDocuments, principal: Principal = require("write")
) -> Count:
    """Delete documents by ids and/or a metadata filter (both must hold); returns how many."""
    if not body.ids and not body.filter:
        raise ValidationError("give ids or a filter", field="ids")
    handle = principal.client.collection(_ref(collection))
    return Count(count=handle.delete(body.ids or None, filter=body.filter or None))


@router.post("/{collection}/search", response_model=list[Hit])
def search(collection: Name, body: SearchIn, principal: Principal = require("read")) -> list[Hit]:
    """The k best chunks for a vector (`vector`) or a text (`query`, mode `text`; `hybrid`
    takes both), filtered by metadata (`filter`, docs/documents.md#metadata-filters)."""
    handle = principal.client.collection(_ref(collection))
    return handle.search(
        body.query,
        vector=body.vector,
        k=body.k,
        threshold=body.threshold,
        filter=body.filter,
        mode=body.mode,
        exact=body.exact,
    )
