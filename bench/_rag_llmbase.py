"""The RAG benchmark's llmbase side, through the public SDK: client.collections.create,
client.collection(name).add(...) with the vectors supplied, .search(...).

Its own database (migrated to head) in the bench's embedded server. One document per
source file, its paragraphs as chunks (embedding, token count and the filter buckets as
chunk metadata). Three loads of the same data:

- `plain`: a collection without a vector index (index='none'): the write path alone
  (binary COPY into a temp table, INSERT ... SELECT under RLS, GIN metadata and full-text
  indexes maintained) — the insert throughput;
- `hnsw`: a collection with its HNSW index (created empty with the collection): add()
  maintains it row by row, so the chunks are searchable when add() returns;
- then `client.collections.reindex` of the hnsw collection: the store's own rebuild
  (maintenance_work_mem sized to the data, parallel workers), i.e. what a load into a
  collection without an index followed by an index build would cost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any

import psycopg

import llmbase
from bench import _rag_data
from llmbase import migrate
from llmbase.db import url_with_database
from llmbase.documents.rows import ChunkInput, DocumentInput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DATABASE = "rag_llmbase"
NAME = "rag"


class LLMBaseSide:
    def __init__(self, server_url: str) -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")
        self.url = url_with_database(server_url, DATABASE)
        migrate.upgrade(self.url)
        self.client = llmbase.connect(self.url, migrate=False)
        self.handle: Any = None
        self.quiet: Any = None
        self.logged = False

    def _docs(self, data: _rag_data.Data, meta: Sequence[dict[str, Any]]) -> list[DocumentInput]:
        docs = []
        for source, idx in groupby(range(len(data.texts)), key=lambda i: data.sources[i]):
            rows = list(idx)
            docs.append(
                DocumentInput(
                    external_id=source,
                    source=source,
                    title=source.rsplit("/", 1)[-1],
                    chunks=[
                        ChunkInput(
                            content=data.texts[i],
                            embedding=data.vectors[i],
                            metadata=meta[i],
                            token_count=None,
                        )
                        for i in rows
                    ],
                )
            )
        return docs

    def _add(self, name: str, docs: list[DocumentInput], batch: int, index: str, m: int, efc: int) -> float:
        self.client.collections.create(
            name,
            _rag_data.DIM,
            distance="cosine",
            index=index,
            m=m,
            ef_construction=efc,
            embedding_model=_rag_data.MODEL,
        )
        handle = self.client.collection(name)
        done = [0]

        def progress(r: Any) -> None:
            done[0] += r.chunks
            print(f"  llmbase {name}: {done[0]:,} chunks", flush=True)

        t0 = time.perf_counter()
        result = handle.add(docs, batch_size=batch, progress=progress)
        secs = time.perf_counter() - t0
        assert result.chunks == sum(len(d.chunks or ()) for d in docs), result
        return secs

    def load(
        self, data: _rag_data.Data, meta: Sequence[dict[str, Any]], m: int, efc: int, batch: int
    ) -> dict[str, Any]:
        """Insert timings: plain (no vector index), hnsw (index maintained), reindex."""
        docs = self._docs(data, meta)
        plain_s = self._add(f"{NAME}-plain", docs, batch, "none", m, efc)
        self.client.collections.drop(f"{NAME}-plain")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        hnsw_s = self._add(NAME, docs, batch, "hnsw", m, efc)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE llmbase.chunks")
            conn.execute("CHECKPOINT")
        rebuilt = self.client.collections.reindex(NAME)
        self.handle = self.client.collection(NAME)
        self.quiet = self.client.collection(NAME, log=False)
        self.logged = self._log_works(data.query_vectors[0])
        if not self.logged:
            print("llmbase: the retrieval log stores nothing yet: searching with log=False", flush=True)
            self.handle = self.quiet
        return {
            "documents": len(docs),
            "plain_s": plain_s,
            "hnsw_s": hnsw_s,
            "reindex_s": rebuilt.seconds,
            "index_bytes": rebuilt.index_bytes,
            "workers": rebuilt.workers,
            "maintenance_work_mem": rebuilt.maintenance_work_mem,
        }

    def _log_works(self, vector: npt.NDArray[np.float32]) -> bool:
        """Does a logged search land in llmbase.retrievals? (the writer may not store them yet)"""
        self.handle.search(vector=vector, k=1)
        self.flush()
        with psycopg.connect(self.url) as conn:  # the superuser: no RLS
            row = conn.execute("SELECT count(*) FROM llmbase.retrievals").fetchone()
        return bool(row and row[0])

    def search(
        self,
        vector: npt.NDArray[np.float32],
        text: str,
        k: int,
        filter: dict[str, Any] | None,
        ef_search: int | None,
        mode: str = "vector",
        exact: bool | None = None,
        log: bool = True,
    ) -> list[int]:
        """Corpus indices of the hits, best first."""
        handle = self.handle if log else self.quiet
        hits = handle.search(
            text if mode != "vector" else None,
            vector=vector if mode != "text" else None,
            k=k,
            filter=filter,
            mode=mode,
            ef_search=ef_search,
            exact=exact,
        )
        return [int(h.metadata["i"]) for h in hits]

    def methods(
        self,
        vectors: npt.NDArray[np.float32],
        k: int,
        filter: Callable[[int], dict[str, Any]],
        n: int = 50,
    ) -> str:
        """How the store searched (index / exact) for the first n queries with these filters:
        the plan's SearchResult.method, which the handle records in the retrieval log."""
        from llmbase.documents import search as plans

        c = self.handle.info()
        core = self.client._core
        seen: dict[str, int] = {}
        for q in range(n):
            res = core.run(plans.search, c, vector=vectors[q], k=k, filter=filter(q))
            seen[res.method] = seen.get(res.method, 0) + 1
        return ", ".join(f"{m} ({100 * c // n}%)" for m, c in sorted(seen.items()))

    def flush(self) -> None:
        with contextlib.suppress(Exception):  # the retrieval log's writer may not be wired yet
            self.client.requests.flush(60)

    def close(self) -> None:
        self.flush()
        self.client.close()
