"""The RAG benchmark's measuring tools: exact neighbours in numpy, recall, and a query
runner for 1..n concurrent clients (threads, each with its own connection from the
client's pool) reporting QPS and latency percentiles."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def exact_topk(
    vectors: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
    masks: Sequence[npt.NDArray[np.bool_] | None] | None = None,
) -> list[list[int]]:
    """Brute-force cosine neighbours (vectors are normalised: dot product), best first;
    masks[q] restricts query q to the rows where it is True (a filter)."""
    import numpy as np

    out: list[list[int]] = []
    for q in range(len(queries)):
        sims = vectors @ queries[q]
        mask = masks[q] if masks is not None else None
        if mask is not None:
            sims = np.where(mask, sims, -np.inf)
        top = np.argpartition(-sims, k)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        out.append([int(i) for i in top if np.isfinite(sims[i])])
    return out


def recall(found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]], k: int) -> float:
    """Mean |found ∩ truth| / min(k, |truth|) over the queries (1.0 when nothing matches)."""
    scores = [
        len(set(f[:k]) & set(t[:k])) / min(k, len(t)) if t else 1.0 for f, t in zip(found, truth, strict=True)
    ]
    return statistics.fmean(scores)


@dataclass
class Run:
    """Results of the last pass; QPS and percentiles: the median over the passes (the
    machine is shared, so one pass can be hit by a neighbour's burst)."""

    results: list[list[int]]
    passes: list[tuple[list[float], float]]  # (latencies ms, wall s) per pass

    @property
    def qps(self) -> float:
        return statistics.median(len(lat) / wall for lat, wall in self.passes)

    def pct(self, q: float) -> float:
        def one(lat: list[float]) -> float:
            xs = sorted(lat)
            return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]

        return statistics.median(one(lat) for lat, _ in self.passes)

    @property
    def returned(self) -> list[int]:
        return [len(r) for r in self.results]


def run_queries(
    search: Callable[[int], list[int]], n: int, clients: int, passes: int = 3, warmup: int = 20
) -> Run:
    """Run search(q) for q in 0..n-1 from `clients` threads (query q on thread q % clients),
    `passes` times after a warm-up."""
    for q in range(min(warmup, n)):
        search(q)
    results: list[list[int]] = [[] for _ in range(n)]
    out: list[tuple[list[float], float]] = []
    for _ in range(passes):
        lat: list[float] = [0.0] * n
        start = threading.Barrier(clients)

        def worker(c: int, lat: list[float] = lat, start: threading.Barrier = start) -> None:
            start.wait()
            for q in range(c, n, clients):
                t0 = time.perf_counter()
                results[q] = search(q)
                lat[q] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for f in [pool.submit(worker, c) for c in range(clients)]:
                f.result()
        out.append((lat, time.perf_counter() - t0))
    return Run(results, out)
