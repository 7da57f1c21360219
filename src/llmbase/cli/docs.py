"""`llmbase docs import|search|stats|reindex`: the document store from the shell.

Thin shells over the SDK (documents/): files are read by documents/files.py, written by
`collection.add`, searched by `collection.search`, rebuilt by `collections.reindex`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..client import LLMBase
from ..client import _Core as Core
from ..db import DEFAULT_TENANT, Database
from ..documents.rows import Collection, WriteResult
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, err_console, fail, print_json

if TYPE_CHECKING:
    from ..documents.embedders import Embedder

app = typer.Typer(help="Document store for RAG: import files, search, stats, reindex.", no_args_is_help=True)

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Tenant slug or id (default: the default tenant).")
]
EmbedderOpt = Annotated[
    str,
    typer.Option(
        "--embedder",
        help="local (all-MiniLM-L6-v2, the `local` extra), openai (OPENAI_API_KEY), none (no vectors:"
        " full-text only), or auto: the collection's model (local when creating).",
    ),
]
ModelOpt = Annotated[str, typer.Option("--model", help="OpenAI embedding model (with --embedder openai).")]


def _client(db: Database, tenant: str | None) -> LLMBase:
    db.ensure_schema()
    base = LLMBase(Core(db, DEFAULT_TENANT, None, root=True))
    return base.tenant(tenant) if tenant else base


def _embedder(kind: str, model: str, collection: Collection | None, dimension: int | None) -> Embedder | None:
    from ..documents.embedders import LOCAL_MODEL, LocalEmbedder, OpenAIEmbedder

    if kind == "auto":
        if collection is None:
            kind = "local"
        elif collection.embedding_model is None:
            kind = "none"
        elif collection.embedding_model == LOCAL_MODEL:
            kind = "local"
        else:
            kind, model = "openai", collection.embedding_model
    if kind == "none":
        return None
    if kind == "local":
        return LocalEmbedder()
    if kind == "openai":
        try:
            import openai
        except ImportError:
            fail("--embedder openai needs the openai package: pip install 'llmbase[openai]'")
        dims = dimension or (collection.dimension if collection is not None else None)
        return OpenAIEmbedder(openai.OpenAI(), model, dims)
    fail(f"unknown embedder {kind!r}: local, openai, none or auto")
    return None


def _find(client: LLMBase, name: str) -> Collection | None:
    from ..errors import NotFound

    try:
        return client.collections.get(name)
    except NotFound:
        return None


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories (.txt, .md, .jsonl, .pdf).")],
    collection: CollectionOpt,
    create: Annotated[
        bool, typer.Option("--create", help="Create the collection when it does not exist.")
    ] = False,
    dimension: Annotated[
        int | None, typer.Option("--dimension", help="Vector size for --create (default: the embedder's).")
    ] = None,
    embedder: EmbedderOpt = "auto",
    model: ModelOpt = "text-embedding-3-small",
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Chunk size in tokens (default 200).")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option("--overlap", help="Tokens shared by neighbouring chunks.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Documents per transaction.")] = 500,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Owner (external id); default: shared with the tenant.")
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Readable by anonymous (PostgREST) clients.")
    ] = False,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Import files as documents: chunk, embed, upsert (unchanged files write nothing)."""
    from ..documents.files import read_paths

    started = time.perf_counter()
    with database(database_url, data_dir) as db:
        client = _client(db, tenant)
        loaded = read_paths(paths, user=user, public=public)
        found = _find(client, collection)
        emb = _embedder(embedder, model, found, dimension)
        if found is None:
            if not create:
                fail(f"collection {collection!r} not found (add --create to create it)")
            dim = dimension or (emb.dimension if emb is not None else None)
            if dim is None:
                fail("--embedder none needs --dimension to create a collection")
            assert dim is not None
            found = client.collections.create(
                collection, dim, embedding_model=emb.model if emb is not None else None
            )
        handle = client.collection(found, emb)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task(f"importing into {collection}", total=len(loaded.documents))

            def step(r: WriteResult) -> None:
                bar.advance(task, r.documents + r.skipped)

            result = handle.add(
                loaded.documents, batch_size=batch_size, chunk_size=chunk_size, overlap=overlap, progress=step
            )
        summary: dict[str, Any] = {
            "collection": collection,
            "files": loaded.files,
            "documents": result.documents,
            "chunks": result.chunks,
            "skipped": result.skipped,
            "skipped_files": [{"path": p, "reason": why} for p, why in loaded.skipped],
            "seconds": round(time.perf_counter() - started, 2),
        }
        if as_json:
            print_json(summary)
            return
        for p, why in loaded.skipped:
            err_console.print(f"[yellow]skipped[/yellow] {p}: {why}")
        console.print(
            f"{summary['files']} files, {summary['documents']} documents written, {summary['chunks']} chunks,"
            f" {summary['skipped']} unchanged skipped, {summary['seconds']} s"
        )


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt,
    k: Annotated[int, typer.Option("-k", "--k", help="How many chunks to return.")] = 5,
    filter: Annotated[
        str | None, typer.Option("--filter", help='Metadata filter as JSON, e.g. \'{"type": "md"}\'.')
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="vector, text or hybrid (default: vector, text without an embedder)."),
    ] = None,
    embedder: EmbedderOpt = "auto",
    model: ModelOpt = "text-embedding-3-small",
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Search a collection and print the best chunks."""
    flt: Any = None
    if filter is not None:
        try:
            flt = json.loads(filter)
        except json.JSONDecodeError as exc:
            fail(f"--filter is not valid JSON: {exc.msg}")
    with database(database_url, data_dir) as db:
        client = _client(db, tenant)
        c = client.collections.get(collection)
        emb = _embedder(embedder, model, c, None)
        chosen = mode or ("vector" if emb is not None else "text")
        hits = client.collection(c, emb).search(query, k=k, filter=flt, mode=chosen)  # type: ignore[arg-type]
        if as_json:
            print_json(hits)
            return
        table = Table("#", "score", "title", "text")
        for h in hits:
            text = h.content if len(h.content) <= 160 else h.content[:157] + "..."
            table.add_row(str(h.rank), f"{h.score:.4f}", h.title or "", text.replace("\n", " "))
        console.print(table)


@app.command("stats")
def stats(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="One collection (default: all).")
    ] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Documents, chunks and sizes per collection."""
    with database(database_url, data_dir) as db:
        rows = _client(db, tenant).collections.stats(collection)
        if as_json:
            print_json(rows)
            return
        table = Table(
            "collection",
            "documents",
            "chunks",
            "embedded",
            "dim",
            "distance",
            "index",
            "table",
            "vector index",
        )
        for r in rows:
            table.add_row(
                r.name,
                str(r.documents),
                str(r.chunks),
                str(r.embedded_chunks),
                str(r.dimension),
                r.distance,
                r.index_type if r.storage == "vector" else f"{r.index_type} (halfvec)",
                _size(r.table_bytes),
                _size(r.vector_index_bytes),
            )
        console.print(table)


@app.command("reindex")
def reindex(
    collection: CollectionOpt,
    m: Annotated[int | None, typer.Option("--m", help="HNSW: links per node (2-100).")] = None,
    ef_construction: Annotated[
        int | None, typer.Option("--ef-construction", help="HNSW: candidate list while building (>= 2 m).")
    ] = None,
    lists: Annotated[int | None, typer.Option("--lists", help="IVFFlat: number of lists.")] = None,
    maintenance_work_mem: Annotated[
        str | None,
        typer.Option("--maintenance-work-mem", help="Memory for the build, e.g. 1GB (default: sized)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Parallel maintenance workers (default: cores - 1).")
    ] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rebuild a collection's vector index and report its size and build time."""
    with database(database_url, data_dir) as db:
        root = _client(db, None)
        tid = root.tenant(tenant).scope().tenant_id if tenant else DEFAULT_TENANT
        r = root.collections.reindex(
            collection,
            tenant=tid,
            m=m,
            ef_construction=ef_construction,
            lists=lists,
            maintenance_work_mem=maintenance_work_mem,
            workers=workers,
        )
        if as_json:
            print_json(r)
            return
        console.print(
            f"rebuilt {r.index or '(no index)'} of {r.collection}: {r.chunks} chunks, {_size(r.index_bytes)},"
            f" {r.seconds:.2f} s (maintenance_work_mem {r.maintenance_work_mem}, {r.workers} workers)"
        )


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
