"""The latency histogram: percentiles within the stated relative error of the exact order
statistic on random and skewed latencies, merging is exact, and SQL agrees with Python."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from llmbase import histogram
from llmbase.histogram import MAX_MS, MIN_MS, RELATIVE_ERROR
from llmbase.rollups import _BUCKET

TOP = math.nextafter(MAX_MS, 0.0)  # largest latency inside the covered range
QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def clamp(x: float) -> float:
    return min(max(x, MIN_MS), TOP)


def exact(values: list[float], q: float) -> float:
    """numpy's 'lower' percentile: the order statistic of rank floor(q * (n - 1))."""
    s = sorted(values)
    return s[math.floor(q * (len(s) - 1))]


def within_bound(est: float | None, truth: float) -> bool:
    assert est is not None
    return abs(est - truth) <= RELATIVE_ERROR * truth * (1 + 1e-9) + 1e-9


Dist = Callable[[random.Random], float]


def lognormal(r: random.Random) -> Dist:
    """Typical model latencies: lognormal, median ~10 ms .. ~8 s."""
    mu, sigma = r.uniform(2, 9), r.uniform(0.1, 2.5)
    return lambda g: g.lognormvariate(mu, sigma)


def pareto(r: random.Random) -> Dist:
    """Heavy tail: a few calls orders of magnitude slower."""
    scale, alpha = r.uniform(1, 500), r.uniform(0.3, 3)
    return lambda g: scale * g.paretovariate(alpha)


def bimodal(r: random.Random) -> Dist:
    """Cache hits and model calls."""
    fast, slow, p = r.uniform(0, 3), r.uniform(5, 10), r.random()
    return lambda g: g.lognormvariate(fast, 0.3) if g.random() < p else g.lognormvariate(slow, 0.5)


def constant(r: random.Random) -> Dist:
    c = r.uniform(MIN_MS, 1e6)
    return lambda g: c


def uniform(r: random.Random) -> Dist:
    a, b = sorted((r.uniform(MIN_MS, 1e5), r.uniform(MIN_MS, 1e5)))
    return lambda g: g.uniform(a, b)


def log_uniform(r: random.Random) -> Dist:
    """Every bucket of the covered range equally likely."""
    return lambda g: math.exp(g.uniform(math.log(MIN_MS), math.log(TOP)))


DISTRIBUTIONS: dict[str, Callable[[random.Random], Dist]] = {
    f.__name__: f for f in (lognormal, pareto, bimodal, constant, uniform, log_uniform)
}


@st.composite
def latencies(draw: st.DrawFn) -> list[float]:
    kind = draw(st.sampled_from(sorted(DISTRIBUTIONS)))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 3000))
    rng = random.Random(seed)
    dist = DISTRIBUTIONS[kind](rng)
    return [clamp(dist(rng)) for _ in range(n)]


@settings(max_examples=300, deadline=None)
@given(latencies(), st.lists(st.floats(0, 1), max_size=5))
def test_quantiles_within_stated_bound(values: list[float], extra_qs: list[float]) -> None:
    hist = histogram.from_values(values)
    assert sum(hist) == len(values)
    for q in (*QS, *extra_qs):
        assert within_bound(histogram.quantile(hist, q), exact(values, q)), q


@settings(max_examples=300)
@given(st.lists(st.floats(MIN_MS, TOP), min_size=1, max_size=200), st.floats(0, 1))
def test_quantiles_within_bound_on_arbitrary_values(values: list[float], q: float) -> None:
    assert within_bound(histogram.quantile(histogram.from_values(values), q), exact(values, q))


@given(st.integers(0, histogram.BUCKETS - 1))
def test_every_bucket_edge_is_within_bound(i: int) -> None:
    lo = MIN_MS * histogram.GAMMA**i
    for x in (lo, math.nextafter(lo, math.inf), lo * histogram.GAMMA * (1 - 1e-12)):
        x = clamp(x)
        assert within_bound(histogram.quantile(histogram.from_values([x]), 0.5), x)


@given(latencies(), latencies())
def test_merge_equals_histogram_of_concatenation(a: list[float], b: list[float]) -> None:
    ha, hb = histogram.from_values(a), histogram.from_values(b)
    assert histogram.add(ha, hb) == histogram.from_values(a + b)
    assert histogram.add(ha, hb) == histogram.add(hb, ha)
    assert histogram.add(ha, []) == ha


def test_edge_cases() -> None:
    assert histogram.quantile([], 0.5) is None
    assert histogram.quantile([0, 0], 0.5) is None
    with pytest.raises(ValueError):
        histogram.quantile([1], 1.5)
    assert histogram.bucket(0.0) == histogram.bucket(MIN_MS) == histogram.bucket(math.nan) == 0
    assert histogram.bucket(1e12) == histogram.BUCKETS - 1


# -- SQL agrees with Python ----------------------------------------------------------------
@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hist=st.one_of(
        latencies().map(histogram.from_values),
        st.lists(st.integers(0, 5), max_size=histogram.BUCKETS),
    ),
    q=st.one_of(st.sampled_from(QS), st.floats(0, 1)),
)
def test_sql_hist_quantile_equals_python(
    conn: psycopg.Connection[tuple[object, ...]], hist: list[int], q: float
) -> None:
    row = conn.execute("SELECT llmbase.hist_quantile(%s::bigint[], %s)", (hist, q)).fetchone()
    assert row is not None
    expected = histogram.quantile(hist, q)
    if expected is None:
        assert row[0] is None
    else:
        assert isinstance(row[0], float)
        assert math.isclose(row[0], expected, rel_tol=1e-12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=latencies(), b=latencies())
def test_sql_hist_sum_merges_like_python(
    conn: psycopg.Connection[tuple[object, ...]], a: list[float], b: list[float]
) -> None:
    ha, hb = histogram.from_values(a), histogram.from_values(b)
    row = conn.execute(
        "SELECT llmbase.hist_sum(h), llmbase.hist_add(%s::bigint[], %s::bigint[])"
        " FROM (VALUES (%s::bigint[]), (%s::bigint[])) AS v(h)",
        (ha, hb, ha, hb),
    ).fetchone()
    assert row is not None
    assert row[0] == row[1] == histogram.add(ha, hb) == histogram.from_values(a + b)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.floats(0, 1e9), st.sampled_from([MIN_MS, 0.0, TOP])), max_size=200))
def test_rollup_bucketing_in_sql_equals_python(
    conn: psycopg.Connection[tuple[object, ...]], values: list[float]
) -> None:
    edges = [MIN_MS * histogram.GAMMA**i for i in range(0, histogram.BUCKETS + 1, 7)]
    xs = values + edges + [math.nextafter(e, 0) for e in edges]
    q = sql.SQL(
        "SELECT array_agg({} ORDER BY n) FROM unnest(%s::float8[]) WITH ORDINALITY AS t(latency_ms, n)"
    )
    row = conn.execute(q.format(_BUCKET), (xs,)).fetchone()
    assert row is not None
    assert row[0] == [histogram.bucket(x) for x in xs]
    nulls = conn.execute(q.format(_BUCKET), ([None, 5.0],)).fetchone()
    assert nulls is not None
    assert nulls[0] == [0, histogram.bucket(5.0)]
