"""The metadata filter language: what each operator means (run in PostgreSQL), that it is
parameterised, that equality reaches the GIN index, that bad filters fail before the
database, and a fuzzer comparing the database with a Python evaluation of the same filter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg import sql

import llmbase
from llmbase._sanitize import clean_text, json_object
from llmbase.documents import search as S
from llmbase.documents.filters import MAX_DEPTH, MAX_TERMS, compile_filter
from llmbase.documents.rows import Collection
from llmbase.errors import PayloadTooLarge, ValidationError
from llmbase.stores._common import Ctx
from test_documents_search import Row, clone_db, create_collection, drive, explain, load, run

# -- semantics, evaluated by PostgreSQL -------------------------------------------------------------
ROWS: dict[str, dict[str, Any]] = {
    "r1": {"a": 1, "s": "apple", "tags": ["x", "y"], "o": {"b": 2, "c": [1, 2]}, "n": None, "f": True},
    "r2": {"a": 2.5, "s": "banana", "tags": ["y"], "o": {"b": "2"}, "f": False},
    "r3": {"a": "1", "s": "Cherry", "tags": [], "o": {"b": 2, "c": [2, 1]}, "n": 0},
    "r4": {"a": [1], "s": "ärger", "tags": "x", "o": [{"b": 2}]},
    "r5": {},
}

CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"r1", "r2", "r3", "r4", "r5"}),
    ({"a": 1}, {"r1"}),  # a number, not the string "1" nor the array [1]
    ({"a": 1.0}, {"r1"}),  # JSON numbers: 1 == 1.0
    ({"a": "1"}, {"r3"}),
    ({"a": {"$eq": [1]}}, {"r4"}),
    ({"f": True}, {"r1"}),
    ({"n": 0}, {"r3"}),
    ({"f": 1}, set()),  # true is not 1
    ({"n": None}, {"r1"}),  # present and null; missing is not null
    ({"a": {"$ne": 1}}, {"r2", "r3", "r4", "r5"}),  # missing fields are "not equal"
    ({"a": {"$in": [1, "1"]}}, {"r1", "r3"}),
    ({"a": {"$in": []}}, set()),
    ({"a": {"$nin": [1, 2.5]}}, {"r3", "r4", "r5"}),
    ({"a": {"$nin": []}}, {"r1", "r2", "r3", "r4", "r5"}),
    ({"a": {"$gt": 1}}, {"r2"}),  # numbers with numbers only: "1" and [1] never compare
    ({"a": {"$gte": 1, "$lt": 2.5}}, {"r1"}),
    ({"a": {"$lte": 2.5}}, {"r1", "r2"}),
    ({"s": {"$gt": "b"}}, {"r2", "r4"}),  # by code point: "C" < "a" < "ä"
    ({"s": {"$lt": "a"}}, {"r3"}),
    ({"o.b": 2}, {"r1", "r3"}),  # dotted paths walk objects ...
    ({"o.b": {"$exists": True}}, {"r1", "r2", "r3"}),  # ... never arrays (r4's o is one)
    ({"o.b": {"$gt": 1}}, {"r1", "r3"}),
    ({"n": {"$exists": True}}, {"r1", "r3"}),
    ({"n": {"$exists": False}}, {"r2", "r4", "r5"}),
    ({"tags": {"$contains": "x"}}, {"r1"}),  # an array holding it, not the scalar "x"
    ({"tags": {"$contains": ["y", "x"]}}, {"r1"}),
    ({"tags": {"$contains": []}}, {"r1", "r2", "r3"}),
    ({"o": {"$contains": {"c": [2]}}}, {"r1", "r3"}),
    ({"o.c": [1, 2]}, {"r1"}),  # equality of arrays keeps order
    ({"o": {"b": 2, "c": [1, 2]}}, {"r1"}),  # equality of objects ignores key order
    ({"o": {"c": [1, 2], "b": 2}}, {"r1"}),
    ({"tags": []}, {"r3"}),
    ({"o": {}}, set()),
    ({"$or": [{"a": 1}, {"s": "banana"}]}, {"r1", "r2"}),
    ({"$or": []}, set()),
    ({"$and": []}, {"r1", "r2", "r3", "r4", "r5"}),
    ({"$and": [{"o.b": 2}, {"$not": {"a": 1}}]}, {"r3"}),
    ({"$not": {"a": {"$gt": 1}}}, {"r1", "r3", "r4", "r5"}),  # two-valued: missing counts
    ({"$not": {"$or": [{"f": True}, {"f": False}]}}, {"r3", "r4", "r5"}),
    ({"a": 1, "s": "apple"}, {"r1"}),
]


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def matching(conn: psycopg.Connection[Any], f: dict[str, Any]) -> set[str]:
    cond, params = compile_filter(f)
    values = sql.SQL(", ").join(
        sql.SQL("({}, {}::jsonb)").format(sql.Literal(k), sql.Literal(json.dumps(v))) for k, v in ROWS.items()
    )
    q = sql.SQL("SELECT name FROM (VALUES {}) AS t(name, metadata) WHERE {}").format(values, cond)
    return {r[0] for r in conn.execute(q, params).fetchall()}


def test_operators_mean_what_the_docs_say(conn: psycopg.Connection[Any]) -> None:
    failures = [(f, matching(conn, f), want) for f, want in CASES if matching(conn, f) != want]
    assert failures == []


def test_filters_are_parameterised(conn: psycopg.Connection[Any]) -> None:
    evil = "'; DROP TABLE llmbase.documents; --"
    cond, params = compile_filter(
        {evil: evil, "a.b'c": {"$gt": evil, "$in": [evil]}, "$or": [{"x": {"$contains": [evil]}}]}
    )
    text = cond.as_string(conn)
    assert "DROP" not in text
    assert "b'c" not in text
    assert all(isinstance(p, str) for p in params)
    assert any(evil in p for p in params)
    # A column other than metadata, qualified.
    cond, _ = compile_filter({"a": 1}, column=sql.Identifier("d", "metadata"))
    assert cond.as_string(conn) == '("d"."metadata" @> %s::jsonb)'
    assert compile_filter(None) == compile_filter({}) == (sql.SQL("TRUE"), [])


def test_equality_compiles_to_containment(conn: psycopg.Connection[Any]) -> None:
    cond, params = compile_filter({"a.b": "x"})
    assert (cond.as_string(conn), params) == ('("metadata" @> %s::jsonb)', ['{"a":{"b":"x"}}'])
    cond, params = compile_filter({"k": {"$in": [1, "2"]}})
    assert cond.as_string(conn) == '(("metadata" @> %s::jsonb) OR ("metadata" @> %s::jsonb))'
    assert params == ['{"k":1}', '{"k":"2"}']
    cond, _ = compile_filter({"k": {"$ne": True}})
    assert cond.as_string(conn) == 'NOT ("metadata" @> %s::jsonb)'
    cond, _ = compile_filter({"k": {"$gt": 3}})
    assert "jsonb_typeof" in cond.as_string(conn)
    assert "CASE" in cond.as_string(conn)


@pytest.mark.parametrize(
    ("f", "message"),
    [
        ({"$where": "1"}, "unknown operator"),
        ({"a": {"$regex": "x"}}, "unknown operator"),
        ({"$gt": 1}, "applies to a field"),
        ({"a": {"$gt": 1, "b": 2}}, "mixed"),
        ({"a": {"$in": "xy"}}, "takes a list"),
        ({"a": {"$nin": 3}}, "takes a list"),
        ({"a": {"$gt": True}}, "number or a string"),
        ({"a": {"$lt": [1]}}, "number or a string"),
        ({"a": {"$gte": None}}, "number or a string"),
        ({"a": {"$exists": 1}}, "true or false"),
        ({"$and": {"a": 1}}, "list of filters"),
        ({"$or": [1]}, "JSON object"),
        ({"$not": [{"a": 1}]}, "JSON object"),
        ({"a": float("nan")}, "NaN"),
        ({"a": {"$gt": float("inf")}}, "NaN"),
        ({"a": [1, float("-inf")]}, "NaN"),
        ({"a": b"bytes"}, "not a JSON value"),
        ({"a": {1, 2}}, "not a JSON value"),
        ({"a": object()}, "not a JSON value"),
        ({"a": {"x": {2: 3}}}, "keys must be strings"),
        ({1: 2}, "keys must be strings"),
        ({"a..b": 1}, "empty segment"),
        ({".a": 1}, "empty segment"),
        ({"": 1}, "empty segment"),
        ({"k" * 201: 1}, "longer than 200"),
        ({"a": {"k" * 201: 1}}, "longer than 200"),
        ({".".join("a" * 9): 1}, "deeper than 8"),
        ({"a": {"$in": list(range(MAX_TERMS + 1))}}, "more than 100 terms"),
        ({"$or": [{f"k{i}": {"$exists": True}} for i in range(MAX_TERMS + 1)]}, "more than 100 terms"),
        ({"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"a": 1}}}}}}}}}, "deeper"),
        ({"a": [[[[[[[[[1]]]]]]]]]}, "deeper"),
        ("not a mapping", "JSON object"),
        ([{"a": 1}], "JSON object"),
    ],
)
def test_bad_filters_are_refused_clearly(f: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        compile_filter(f)
    assert err.value.field == "filter"


def test_limits_at_the_edge_are_accepted() -> None:
    nested: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH - 1):
        nested = {"$not": nested}
    compile_filter(nested)
    compile_filter({".".join("a" * MAX_DEPTH): 1, "k" * 200: 1})
    compile_filter({"a": {"$in": list(range(MAX_TERMS))}})
    with pytest.raises(PayloadTooLarge):
        compile_filter({"a": "x" * 70_000})
    circular: dict[str, Any] = {}
    circular["a"] = circular
    with pytest.raises(ValidationError, match="not a JSON value"):
        compile_filter(circular)


def test_strings_follow_the_storage_rule(conn: psycopg.Connection[Any]) -> None:
    """NUL and lone surrogates become U+FFFD in filters as in stored metadata, so a filter
    finds what was written with the same odd characters."""
    stored = json_object({"k\x00": "v\x00\ud800", "s": "a\x00"}, field="metadata", max_bytes=1000)
    for f in ({"k\x00": "v\x00\ud800"}, {"s": {"$gt": "a"}}, {"s": {"$in": ["a\x00"]}}):
        cond, params = compile_filter(f)
        q = sql.SQL("SELECT {} FROM (VALUES (%s::jsonb)) t(metadata)").format(cond)
        assert conn.execute(q, [*params, stored]).fetchone() == (True,), f
    _, params = compile_filter({"k\x00": "v\x00\ud800"})
    assert params == ['{"k\ufffd":"v\ufffd\ufffd"}']


# -- the GIN index serves equality ---------------------------------------------------------------------
def kind(conn: psycopg.Connection[Any], q: Any) -> str:
    text = q.sql.as_string(conn)
    if text.startswith("EXPLAIN"):
        return "estimate"
    if "set_config" in text:
        return "settings"
    return "probe" if text.startswith("SELECT count(*)") else "search"


def test_equality_uses_the_gin_index(
    client: llmbase.LLMBase, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """Equality, $in and dotted paths are index conditions on the GIN index (jsonb_path_ops),
    under RLS as the application role (migration 0005 marks jsonb @> LEAKPROOF for that);
    a range is not."""
    t = client.tenant(client.tenants.create("gin").id)
    coll = create_collection(t, "gin", 2, hnsw_m=4, hnsw_ef_construction=8)
    rows = [
        Row(i // 10, f"row {i}", [1.0, float(i)], {"cat": f"c{i % 500}", "n": i, "o": {"p": i % 7}})
        for i in range(5000)
    ]
    load(db_url, coll, rows)
    scope = t.scope()
    ctx = Ctx(scope, client._core.settings)
    index = f"Bitmap Index Scan on {coll.partition_name}_metadata_idx"
    # A condition the index cannot serve stays a scan even when sequential scans are
    # penalised; an indexable one is used without any such help.
    no_seq = "SET LOCAL enable_seqscan = off"
    for f in ({"cat": "c7"}, {"cat": {"$in": ["c1", "c2"]}}, {"o.p": 3, "cat": "c3"}):
        result, queries = drive(conn, scope, S.search(ctx, coll, vector=[1.0, 2.0], filter=f))
        assert result.method == "exact"
        assert result.candidates is not None
        assert result.candidates < S.EXACT_ROWS
        # settings, the planner's estimate, the probe (a LIMITed count), the search
        assert [kind(conn, q) for q in queries] == ["settings", "estimate", "probe", "search"]
        for q in queries[2:]:
            plan = explain(conn, scope, q)
            assert index in plan, plan
            assert "(metadata @> " in plan
    _, queries = drive(
        conn, scope, S.search(ctx, coll, vector=[1.0, 2.0], filter={"cat": {"$in": ["c1", "c2"]}})
    )
    assert "BitmapOr" in explain(conn, scope, queries[-1])
    _, queries = drive(conn, scope, S.search(ctx, coll, vector=[1.0, 2.0], filter={"n": {"$gt": 10}}))
    assert index not in explain(conn, scope, queries[-1], settings=no_seq)
    by_cat = run(t, S.search, coll, vector=[1.0, 2.0], filter={"cat": "c7"}, k=100)
    assert sorted(h.metadata["n"] for h in by_cat.hits) == list(range(7, 5000, 500))


# -- fuzzing: the database agrees with Python, never errs, never leaks -------------------------------------
KEYS = [
    "a",
    "b",
    "it's",
    'say "hi"',
    "--",
    "x--y",
    "$dollar",
    "a$",
    "ключ",
    "🙂",
    "sp ace",
    "back\\slash",
    "semi;colon",
    "nul\x00key",
    "dot.ted",
    "%s",
    "{}",
]
STRINGS = [
    "",
    "x",
    "it's",
    '"quoted"',
    "-- comment",
    "'; DROP TABLE llmbase.documents; --",
    "$gt",
    "ünï",
    "🙂",
    "a.b",
    "nul\x00",
    "\\",
    "%s",
    "%(x)s",
    "{}",
    "\ud800",
]
NUMBERS = [0, 1, -1, 2, 1.0, 0.5, -2.25, 10**20, 1e300, 3]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NUMBERS),
    st.integers(-3, 3),
    st.sampled_from(STRINGS),
    st.text(max_size=3),
)
_keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=4))
_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(KEYS), c, max_size=3),
    max_leaves=6,
)
_paths = st.one_of(_keys, st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(KEYS), st.sampled_from(KEYS)))
_ops = st.sampled_from(
    ["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$contains", "$bad"]
)


def _operand(op: str) -> st.SearchStrategy[Any]:
    if op in ("$in", "$nin"):
        return st.lists(_values, max_size=4)
    if op == "$exists":
        return st.booleans()
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return st.one_of(st.sampled_from(NUMBERS), st.integers(-3, 3), st.sampled_from(STRINGS), _values)
    return _values


MISSING = object()


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _dec(x: int | float) -> Decimal:
    """jsonb numbers are decimals: a float is the decimal its repr spells."""
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _clean(v: Any) -> Any:
    if isinstance(v, str):
        return clean_text(v)
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {clean_text(k): _clean(x) for k, x in v.items()}
    return v


def jeq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _num(a) and _num(b):
        return _dec(a) == _dec(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(jeq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(jeq(a[k], b[k]) for k in a)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return a is None and b is None


def jcontains(a: Any, b: Any) -> bool:
    """jsonb's @> below the top level."""
    if isinstance(b, dict):
        return isinstance(a, dict) and all(k in a and jcontains(a[k], v) for k, v in b.items())
    if isinstance(b, list):
        return isinstance(a, list) and all(any(jcontains(x, y) for x in a) for y in b)
    return not isinstance(a, list | dict) and jeq(a, b)


def lookup(m: dict[str, Any], key: str) -> Any:
    cur: Any = m
    for part in key.split("."):
        part = clean_text(part)
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def evaluate(f: dict[str, Any], m: dict[str, Any]) -> bool:
    """The documented semantics, in Python (for a filter compile_filter accepted)."""
    for key, cond in f.items():
        if key == "$and":
            ok = all(evaluate(s, m) for s in cond)
        elif key == "$or":
            ok = any(evaluate(s, m) for s in cond)
        elif key == "$not":
            ok = not evaluate(cond, m)
        else:
            v = lookup(m, key)
            if isinstance(cond, dict) and any(k.startswith("$") for k in cond):
                ok = all(_op(op, v, _clean(x)) for op, x in cond.items())
            else:
                ok = v is not MISSING and jeq(v, _clean(cond))
        if not ok:
            return False
    return True


def _op(op: str, v: Any, x: Any) -> bool:
    present = v is not MISSING
    if op == "$eq":
        return present and jeq(v, x)
    if op == "$ne":
        return not (present and jeq(v, x))
    if op == "$in":
        return present and any(jeq(v, y) for y in x)
    if op == "$nin":
        return not (present and any(jeq(v, y) for y in x))
    if op == "$exists":
        return bool(present == x)
    if op == "$contains":
        return present and jcontains(v, x if isinstance(x, list | dict) else [x])
    if isinstance(x, str):
        ok = isinstance(v, str)
        a: Any = v
        b: Any = x
    else:
        ok = _num(v)
        a, b = (_dec(v), _dec(x)) if ok else (0, 0)
    if not ok:
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]  # type: ignore[no-any-return]


def _metadata(i: int) -> dict[str, Any]:
    """Deterministic, varied metadata over the hostile vocabulary."""
    k = KEYS
    s = STRINGS
    n = NUMBERS
    base: dict[str, Any] = {
        k[i % len(k)]: s[i % len(s)],
        k[(i * 3 + 1) % len(k)]: n[i % len(n)],
        k[(i * 5 + 2) % len(k)]: [s[(i + 1) % len(s)], n[(i + 2) % len(n)]],
        "a": {"b": n[(i * 7) % len(n)], k[i % len(k)]: s[(i * 2) % len(s)]},
    }
    if i % 3 == 0:
        base["b"] = None
    if i % 4 == 0:
        base["dot"] = {"ted": i % 3 == 0, "x": [{"y": 1}]}
    if i % 5 == 0:
        base["a"] = [1, {"b": 1}]
    return _clean(base)


FUZZ_ROWS = 48


def _pairs(m: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in m.items():
        path = prefix + key
        yield path, value
        if isinstance(value, dict):
            yield from _pairs(value, path + ".")


#: (path, value) pairs present in the corpus, so that fuzzed filters match some rows.
PAIRS = sorted({(p, json.dumps(v)) for i in range(FUZZ_ROWS) for p, v in _pairs(_metadata(i))})


def _from_corpus(pair: tuple[str, str], op: str, extra: list[Any]) -> dict[str, Any]:
    path, value = pair[0], json.loads(pair[1])
    if op == "=":
        return {path: value}
    if op in ("$in", "$nin"):
        return {path: {op: [value, *extra]}}
    if op == "$exists":
        return {path: {op: bool(extra)}}
    if op == "$contains" and isinstance(value, list) and value:
        return {path: {op: value[len(extra) % len(value)]}}
    return {path: {op: value}}


_op_objects = st.dictionaries(_ops, st.just(None), min_size=1, max_size=2).flatmap(
    lambda ops: st.fixed_dictionaries({op: _operand(op) for op in ops})
)
_corpus_fields = st.builds(
    _from_corpus,
    st.sampled_from(PAIRS),
    st.sampled_from(["=", "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$contains"]),
    st.lists(_values, max_size=2),
)
_fields = st.one_of(
    _corpus_fields,
    st.builds(lambda a, b: {**a, **b}, _corpus_fields, _corpus_fields),
    st.dictionaries(_paths, st.one_of(_values, _op_objects), max_size=2),
)
_filters = st.recursive(
    _fields,
    lambda c: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(c, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(c, max_size=3)),
        st.builds(lambda x: {"$not": x}, c),
        st.builds(lambda f, x: {**f, "$or": [x]}, _fields, c),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def fuzz_db(
    server_url: str, template_db: str
) -> Iterator[tuple[llmbase.LLMBase, Collection, dict[UUID, dict[str, Any]], set[UUID]]]:
    for url in clone_db(server_url, template_db):
        client = llmbase.connect(url, migrate=False)
        try:
            a, b = client.tenants.create("fuzz-a"), client.tenants.create("fuzz-b")
            ta, tb = client.tenant(a.id), client.tenant(b.id)
            u1, u2 = ta.users.create("u1").id, ta.users.create("u2").id
            coll, coll_b = create_collection(ta, "fuzz", 2), create_collection(tb, "fuzz", 2)
            rows, rows_b = [], []
            for i in range(FUZZ_ROWS):
                m = _metadata(i)
                owner, public = [(u1, False), (u2, False), (None, False), (None, True)][i % 4]
                rows.append(Row(i, f"row {i}", [1.0, 0.5 + i], m, owner, public))
                rows_b.append(Row(i, f"b {i}", [1.0, 0.5 + i], m, None, i % 2 == 0))
            loaded = load(url, coll, rows)
            load(url, coll_b, rows_b)
            visible = {
                cid: r.metadata
                for cid, r in zip(loaded.chunks, rows, strict=True)
                if r.user in (None, u1) or r.public
            }
            hidden = {cid for cid, r in zip(loaded.chunks, rows, strict=True) if r.user == u2}
            yield ta.user(u1), coll, visible, hidden
        finally:
            client.close()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=_filters)
def test_fuzzed_filters_agree_with_python_and_never_leak(
    fuzz_db: tuple[llmbase.LLMBase, Collection, dict[UUID, dict[str, Any]], set[UUID]], f: dict[str, Any]
) -> None:
    user, coll, visible, hidden = fuzz_db
    try:
        compile_filter(f)
    except ValidationError:
        event("refused")
        # Refused before the database: the search refuses it the same way.
        ctx = Ctx(user.scope(), user._core.settings)
        with pytest.raises(ValidationError):
            next(S.search(ctx, coll, vector=[1.0, 1.0], filter=f))
        return
    res = run(user, S.search, coll, vector=[1.0, 1.0], filter=f, k=1000, exact=True)
    got = {h.chunk_id for h in res.hits}
    want = {cid for cid, m in visible.items() if evaluate(f, m)}
    event("matches: " + ("none" if not want else "all" if len(want) == len(visible) else "some"))
    assert got == want
    assert not got & hidden
    assert all(not math.isnan(h.score) for h in res.hits)
