"""Mergeable latency histograms with a stated relative-error bound (log buckets, DDSketch-style).

A latency x (milliseconds) falls in bucket i = floor(ln(x / MIN_MS) / ln(GAMMA)); bucket i
covers [MIN_MS * GAMMA**i, MIN_MS * GAMMA**(i+1)). A quantile is answered with the harmonic
mean of its bucket's bounds, which is within RELATIVE_ERROR (5%) of every value in that
bucket. So for MIN_MS <= x < MAX_MS:

    |estimate(q) - exact(q)| <= RELATIVE_ERROR * exact(q)

where exact(q) is the order statistic of rank floor(q * (n - 1)) (numpy's 'lower').
Histograms are lists of counts; merging is element-wise addition (rollups add them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "BUCKETS",
    "GAMMA",
    "MAX_MS",
    "MIN_MS",
    "RELATIVE_ERROR",
    "add",
    "bucket",
    "from_values",
    "quantile",
]

RELATIVE_ERROR = 0.05
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)  # 1.10526...
MIN_MS = 0.1
BUCKETS = 200  # covers 0.1 ms .. about 13.7 hours; values outside clamp to the ends
MAX_MS = MIN_MS * GAMMA**BUCKETS
_LOG_GAMMA = math.log(GAMMA)


def bucket(ms: float) -> int:
    """The bucket index of a latency in milliseconds (clamped to 0..BUCKETS-1)."""
    if not ms > MIN_MS:  # also NaN
        return 0
    i = int(math.log(ms / MIN_MS) / _LOG_GAMMA)
    return i if i < BUCKETS else BUCKETS - 1


def from_values(values: Iterable[float]) -> list[int]:
    """A histogram (counts, trailing zeros trimmed) of the given latencies."""
    counts: list[int] = []
    for v in values:
        i = bucket(v)
        if i >= len(counts):
            counts.extend([0] * (i + 1 - len(counts)))
        counts[i] += 1
    return counts


def add(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """Merge two histograms."""
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n)]


def representative(i: int) -> float:
    """The value reported for bucket i: within RELATIVE_ERROR of anything in the bucket."""
    lo = MIN_MS * GAMMA**i
    hi = lo * GAMMA
    return 2 * lo * hi / (lo + hi)


def quantile(counts: Sequence[int], q: float) -> float | None:
    """Estimated q-quantile (0 <= q <= 1) of the values counted; None when empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be between 0 and 1")
    n = sum(counts)
    if n == 0:
        return None
    rank = math.floor(q * (n - 1))  # 0-based rank of the order statistic
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen > rank:
            return representative(i)
    return representative(len(counts) - 1)  # pragma: no cover - unreachable
