"""The writer's fast paths store exactly what the slow ones would: orjson vs the documented
JSON rule, the secret pre-check vs the scrubber, the COPY row vs the record as a dict."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import random
from collections import OrderedDict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbase._sanitize import clean_json
from llmbase.ingest.records import (
    REQUEST_COLUMNS,
    REQUEST_INDEX,
    Normaliser,
    Record,
    decode,
    dump_json,
    encode,
    json_bytes,
    request_row,
    request_values,
    text_array,
)
from llmbase.redact import MARK, maybe_secret, scrub_json

T = UUID(int=7)
SECRETS = [
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


def norm(scrub: bool = True) -> Normaliser:
    return Normaliser(body_max_bytes=4096, metadata_max_bytes=4096, scrub=scrub)


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


class Shouty(str):
    def __str__(self) -> str:
        return "SHOUT"


# -- JSON: orjson where it writes the rule's JSON, the json module elsewhere --------------------------
@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ({"a": float("nan"), "b": None}, {"a": "NaN", "b": None}),
        ([1.5, [float("inf")], None], [1.5, ["Infinity"], None]),
        ({"x": -math.inf}, {"x": "-Infinity"}),
        ({"s": {3}, "b": b"raw"}, {"s": [3], "b": "b'raw'"}),
        (
            {"when": datetime(2024, 1, 2, tzinfo=UTC), "day": date(2024, 1, 2)},
            {"when": "2024-01-02 00:00:00+00:00", "day": "2024-01-02"},
        ),
        ({1: "int key", None: "none key"}, {"1": "int key", "null": "none key"}),  # as json.dumps
        ({"nul": "a\x00b", "k\x00": 1}, {"nul": "a\ufffdb", "k\ufffd": 1}),
        ({"lone": "x\ud800y"}, {"lone": "x\ufffdy"}),
        ({"c": Color.RED, "l": Level.HIGH}, {"c": "red", "l": 3}),
        ({"p": Point(1)}, {"p": "Point(x=1)"}),
        (OrderedDict(a=1), {"a": 1}),
        ({"u": UUID(int=5)}, {"u": str(UUID(int=5))}),
        ({"big": 2**70}, {"big": 2**70}),
        ({"t": (1, 2)}, {"t": [1, 2]}),
        ("plain", "plain"),
    ],
)
def test_json_follows_the_documented_rule(value: Any, stored: Any) -> None:
    out = json_bytes(value)
    assert json.loads(out) == stored
    assert json.loads(out) == json.loads(dump_json(value))  # the json module's way: the same


def test_a_str_subclass_is_written_by_the_rule_not_by_its_content() -> None:
    # orjson would write the content; the rule says str() for what is not plain JSON.
    assert json.loads(json_bytes({"s": Shouty("quiet")})) == json.loads(dump_json({"s": Shouty("quiet")}))


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\x00", "\ud800", "sk-proj-abcdefghijklmnopqrstuvwx", "Bearer abcdefghijklmnopqrstuv"]),
    st.sampled_from([Color.RED, Level.HIGH, b"bytes", {1, 2}, date(2020, 1, 1)]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.text(max_size=12), st.sampled_from(["api_key", "Password", "max_tokens", "x\ud800"])
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_json_bytes_equals_the_json_module_by_the_rule(value: Any) -> None:
    fast = json.loads(json_bytes(value))
    assert fast == json.loads(dump_json(value))
    assert fast == json.loads(json.dumps(clean_json(value), ensure_ascii=False))


# -- the secret pre-check -----------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_maybe_secret_is_never_false_where_scrub_json_changes_something(value: Any) -> None:
    text = json_bytes(value)
    if not maybe_secret(text):
        assert scrub_json(value, text.decode()) == text.decode()


@pytest.mark.parametrize(
    "value",
    [
        {"messages": [{"content": f"here is my key {SECRETS[0]} ok"}]},
        {"headers": {"X-Api-Key": "hunter2"}},
        {"nested": [{"deeper": {"refresh_token": 12345}}]},
        {"dsn": "postgres://bob:s3cret@db.example.com/x"},
        {"auth": "Bearer abcdefghijklmnopqrstuvwxyz"},
        {"pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"},
        {"\u212aey": "kelvin-sign k: a credential name for Python's case-insensitive match"},
        {"paſſword": "long s"},
        *({"t": s} for s in SECRETS),
    ],
)
def test_maybe_secret_says_yes_to_every_kind_of_secret(value: dict[str, Any]) -> None:
    text = json_bytes(value)
    assert maybe_secret(text)
    assert maybe_secret(b"\n".join([json_bytes({"model": "gpt-4o"}), text, b"{}"]))  # joined with others


def test_maybe_secret_says_no_to_ordinary_bodies() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Tell me about tokens and keys. " * 10}],
        "max_tokens": 512,
        "id": "chatcmpl-000000000001",
        "usage": {"prompt_tokens": 5, "total_tokens": 9},
    }
    assert not maybe_secret(json_bytes(body))


def test_a_secret_in_a_body_is_redacted_on_the_fast_path() -> None:
    rec = norm().request(
        T,
        {
            "request_body": {"messages": [{"role": "user", "content": f"use {SECRETS[0]} please"}]},
            "response_body": {"choices": [{"text": "ok"}], "api_key": "plain-value"},
            "metadata": {"note": SECRETS[2]},
        },
    )
    row = rec.row
    blob = row["request_body"] + row["response_body"] + row["metadata"]
    assert all(s not in blob for s in SECRETS) and "plain-value" not in blob
    assert blob.count(MARK) == 3
    assert json.loads(row["response_body"]) == {"choices": [{"text": "ok"}], "api_key": MARK}


def test_nul_and_lone_surrogates_in_bodies_and_metadata_are_replaced() -> None:
    rec = norm().request(
        T, {"request_body": {"t": "a\x00b"}, "response_body": ["\ud800"], "metadata": {"m": "\x00"}}
    )
    row = rec.row
    assert json.loads(row["request_body"]) == {"t": "a\ufffdb"}
    assert json.loads(row["response_body"]) == ["\ufffd"]
    assert json.loads(row["metadata"]) == {"m": "\ufffd"}


def test_a_capped_body_keeps_its_marker_and_the_rest_is_exact() -> None:
    n = Normaliser(body_max_bytes=100, metadata_max_bytes=50, scrub=True)
    rec = n.request(T, {"request_body": {"x": "y" * 500}, "metadata": {"m": "z" * 200}, "response_body": 1})
    row = rec.row
    req, md = json.loads(row["request_body"]), json.loads(row["metadata"])
    assert req["$truncated"] is True and req["original_bytes"] == len('{"x":""}') + 500
    assert md["$truncated"] is True
    assert json.loads(row["response_body"]) == 1
    assert row["bodies_truncated"] is True  # metadata's marker does not count
    small = n.request(T, {"metadata": {"m": "z" * 200}})
    assert small.row["bodies_truncated"] is False


# -- the COPY row ------------------------------------------------------------------------------------
def test_the_copy_row_and_the_dict_agree() -> None:
    payload = {
        "id": UUID(int=1),
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
        "user_id": UUID(int=2),
        "model": "m",
        "tokens_prompt": 3,
        "tokens_completion": 4,
        "cost_usd": Decimal("0.5"),
        "tags": ["a", "é"],
        "request_body": {"q": 1},
    }
    rec = norm().request(T, payload)
    values = rec.values
    assert isinstance(values, tuple) and len(values) == len(REQUEST_COLUMNS)
    assert values[0] == T.bytes and values[2] == UUID(int=1).bytes
    row = rec.row
    assert row["id"] == UUID(int=1) and row["user_id"] == UUID(int=2) and row["tokens_total"] == 7
    assert row["tags"] == ["a", "é"] and json.loads(row["request_body"]) == {"q": 1}
    assert request_values(row, T) == values
    assert request_row(values) == row
    back = decode(encode(rec))
    assert back.values == values and back.row == row


def test_a_copy_row_is_not_tracked_by_the_garbage_collector() -> None:
    import gc

    rec = norm().request(T, {"model": "m", "user_id": UUID(int=3), "request_body": {"a": [1]}})
    values = rec.values
    gc.collect()
    assert not gc.is_tracked(values)


def test_copy_rows_in_binary_format_arrive_as_their_types(db_url: str) -> None:
    """uuid, jsonb and text[] values of a COPY row go through bytea's dumper as they are."""
    from psycopg.types.string import BytesBinaryDumper

    tags = [[], ["prod"], ["a", "é", "x" * 200]]
    rec = norm().request(T, {"id": UUID(int=11), "request_body": {"é": [1, None]}})
    with psycopg.connect(db_url) as conn:
        conn.adapters.register_dumper(None, BytesBinaryDumper)
        conn.execute("CREATE TEMP TABLE t (n int, u uuid, j jsonb, a text[])")
        with conn.cursor().copy("COPY t FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "bytea", "bytea", "bytea"])
            for n, tag in enumerate(tags):
                v = rec.values
                cp.write_row((n, v[REQUEST_INDEX["id"]], v[REQUEST_INDEX["request_body"]], text_array(tag)))
        rows = conn.execute("SELECT u, j, a FROM t ORDER BY n").fetchall()
    assert rows == [(UUID(int=11), {"é": [1, None]}, tag) for tag in tags]


def test_an_empty_list_does_not_send_the_scrubber_into_a_loop() -> None:
    assert scrub_json([], "[]") == "[]"
    assert scrub_json({"a": [], "api_key": "x"}, '{"a":[],"api_key":"x"}') == f'{{"a":[],"api_key":"{MARK}"}}'


def test_invalid_values_still_take_the_converters() -> None:
    rec = norm().request(
        T,
        {
            "model": "x" * 300,
            "provider": "naïve",
            "user_id": str(UUID(int=9)),
            "tokens_prompt": 2.0,
            "latency_ms": -1.0,
            "status": "OK",
            "stream": "yes",
            "tags": ("t", 5),
        },
    )
    row = rec.row
    assert len(row["model"]) == 200 and row["model"].endswith("…")
    assert row["provider"] == "naïve" and row["user_id"] == UUID(int=9) and row["tokens_prompt"] == 2
    assert "latency_ms" not in row and row["status"] == "success" and row["stream"] is True
    assert row["tags"] == ["t", "5"]
    assert set(json.loads(row["metadata"])["_llmbase"]["invalid"]) == {"latency_ms"}


def test_records_from_a_slug_tenant_get_their_tenant_in_the_sink() -> None:
    rec = Record.lazy("request", "acme", {"model": "m"}, norm())
    assert rec.values[0] is None  # filled in by the sink once the slug is resolved
    rec.values = (UUID(int=4).bytes, *rec.values[1:])
    assert rec.row["model"] == "m"


def test_random_payloads_round_trip_through_the_spool_encoding() -> None:
    rng = random.Random(5)
    n = norm()
    for i in range(200):
        payload = {
            "model": rng.choice(["a", "b", None]),
            "latency_ms": rng.choice([1.5, None, float("nan"), "12"]),
            "tags": rng.choice([["x"], [], None]),
            "metadata": rng.choice([{"i": i}, None, "s"]),
            "request_body": rng.choice([{"k": [1, None]}, None, [float("inf")]]),
        }
        rec = n.request(T, payload)
        assert decode(encode(rec)).values == rec.values


# -- the sink's direct COPY and its fallbacks, against the database ----------------------------------
def test_old_times_and_repeated_ids_in_a_fresh_batch_are_stored_once(client: Any, db_url: str) -> None:
    from datetime import timedelta

    from test_ingest_support import ids_in_db, profile_mismatches, rollup_mismatches, superuser

    user = client.users.create("speed").id
    now = datetime.now(UTC)
    old = [now - timedelta(days=40), now - timedelta(days=3, hours=5)]
    ids = [
        client.requests.log(model="m", user_id=user, latency_ms=float(i), created_at=old[i % 2])
        for i in range(6)
    ]
    ids += [client.requests.log(model="m", user_id=user, latency_ms=2.5) for _ in range(20)]
    assert client.requests.flush(30)
    again = client.requests.log(id=ids[0], model="m", user_id=user, created_at=old[0])  # a repeat
    assert again == ids[0] and client.requests.flush(30)
    with superuser(db_url) as conn:
        assert sorted(ids_in_db(conn)) == sorted(ids)
        assert rollup_mismatches(conn) == []
        assert profile_mismatches(conn) == []
    st = client.requests.stats()
    assert st["duplicates"] == 1 and st["written"] == len(ids) + 1 and st["errors"] == 0


def test_records_normalised_ahead_of_their_batch_see_the_hook_once(db_url: str, tmp_path: Any) -> None:
    """While the server ends a batch's COPY the writer normalises the next queued records:
    each record still goes through the redaction hook exactly once and is stored once."""
    import llmbase
    from test_ingest_support import ids_in_db, rollup_mismatches, superuser

    seen: dict[Any, int] = {}

    def hook(kind: str, p: dict[str, Any]) -> None:
        seen[p["id"]] = seen.get(p["id"], 0) + 1
        p["metadata"] = {"hooked": True}

    c = llmbase.connect(
        db_url,
        migrate=False,
        ingest_spool_dir=tmp_path / "spool",
        ingest_batch_size=500,
        ingest_queue_max=20_000,
        redact=hook,
    )
    try:
        ids = [
            c.requests.log(model=f"m{i % 3}", latency_ms=float(i % 50), request_body={"i": i})
            for i in range(6000)
        ]
        assert c.requests.flush(60)
        st = c.requests.stats()
    finally:
        c.close()
    assert set(seen) == set(ids) and set(seen.values()) == {1}
    assert (st["written"], st["errors"], st["dropped"]) == (6000, 0, 0)
    with superuser(db_url) as conn:
        assert sorted(ids_in_db(conn)) == sorted(ids)
        assert rollup_mismatches(conn) == []
        hooked = conn.execute(
            "SELECT count(*) FROM llmbase.requests WHERE metadata = '{\"hooked\": true}'"
        ).fetchone()
    assert hooked == (6000,)
