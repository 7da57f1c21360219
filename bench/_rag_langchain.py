"""The RAG benchmark's comparison: langchain-postgres's PGVector on the same server and data.

Its own database in the same embedded cluster. Vectors are supplied (add_embeddings, in
batches), the table is theirs (langchain_pg_embedding: embedding vector(384), cmetadata
jsonb with their GIN index), then the same HNSW index as llmbase's (m, ef_construction,
cosine) on their embedding column with the server's maintenance settings. Searches go
through their API (similarity_search_with_score_by_vector, their metadata filter); ef_search
is set per engine by a connection option, so no extra statement per query.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from llmbase.db import url_with_database

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DATABASE = "rag_langchain"
COLLECTION = "bench"


def _cached_embeddings(index: dict[str, list[float]]) -> Any:
    """A LangChain Embeddings returning the cached vectors (no model call in the timings)."""
    from langchain_core.embeddings import Embeddings

    class Cached(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [index[t] for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return index[text]

    return Cached()


class LangChainSide:
    def __init__(self, server_url: str, dim: int) -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")
        self.url = url_with_database(server_url, DATABASE)
        self.sa_url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.dim = dim
        self._stores: dict[int | None, Any] = {}

    def store(self, ef_search: int | None = None) -> Any:
        """Their PGVector bound to an engine whose sessions use this hnsw.ef_search."""
        if ef_search not in self._stores:
            from langchain_postgres import PGVector
            from sqlalchemy import create_engine

            args = {"options": f"-c hnsw.ef_search={ef_search}"} if ef_search else {}
            engine = create_engine(self.sa_url, connect_args=args, pool_size=8)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PGVector is deprecated in favour of PGVectorStore
                self._stores[ef_search] = PGVector(
                    embeddings=_cached_embeddings({}),
                    connection=engine,
                    embedding_length=self.dim,
                    collection_name=COLLECTION,
                    use_jsonb=True,
                )
        return self._stores[ef_search]

    def insert(
        self,
        texts: Sequence[str],
        vectors: npt.NDArray[np.float32],
        metadatas: Sequence[dict[str, Any]],
        batch: int,
        progress: bool = True,
    ) -> float:
        """add_embeddings in batches; seconds until everything is committed."""
        store = self.store()
        lists = vectors.tolist()  # what their API takes: converted before the clock starts
        t0 = time.perf_counter()
        for b in range(0, len(texts), batch):
            store.add_embeddings(
                list(texts[b : b + batch]),
                lists[b : b + batch],
                list(metadatas[b : b + batch]),
            )
            if progress and (b // batch) % 20 == 0:
                print(f"  langchain: {b + batch:,}/{len(texts):,} rows", flush=True)
        return time.perf_counter() - t0

    def index(self, m: int, ef_construction: int) -> tuple[float, int]:
        """The same HNSW index as llmbase's; (seconds, index bytes)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            t0 = time.perf_counter()
            conn.execute(
                "CREATE INDEX langchain_pg_embedding_hnsw ON langchain_pg_embedding"
                f" USING hnsw (embedding vector_cosine_ops) WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
            )
            secs = time.perf_counter() - t0
            conn.execute("ANALYZE langchain_pg_embedding")
            row = conn.execute("SELECT pg_relation_size('langchain_pg_embedding_hnsw')").fetchone()
        return secs, int(row[0]) if row else 0

    def search(
        self, vector: npt.NDArray[np.float32], k: int, filter: dict[str, Any] | None, ef_search: int | None
    ) -> list[int]:
        """Corpus indices of their hits, best first."""
        hits = self.store(ef_search).similarity_search_with_score_by_vector(
            vector.tolist(), k=k, filter=filter
        )
        return [int(doc.metadata["i"]) for doc, _ in hits]

    def close(self) -> None:
        for store in self._stores.values():
            store.session_maker.remove()
            store._engine.dispose()
        self._stores.clear()
