"""The request log's write path against the real database: log() -> writer -> COPY -> rows,
rollups and profiles maintained exactly, odd values stored by the rule, dead letters, the
spool (queue full, database unreachable), redaction, runs, fork, async."""

from __future__ import annotations

import json
import multiprocessing
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase.db import DEFAULT_TENANT
from llmbase.ingest.api import enqueue
from llmbase.ingest.records import Normaliser, encode
from llmbase.redact import MARK
from test_ingest_support import (
    ids_in_db,
    payload,
    profile_mismatches,
    rollup_mismatches,
    superuser,
)

SECRET = "sk-proj-Zq8xR2mN5vB7cL1kJ4hG6fD9sA3pO0iU"
UNREACHABLE = "postgresql://postgres@/llmbase?host=/nonexistent-llmbase-socket-dir"


def connect(url: str, tmp_path: Path, **settings: Any) -> llmbase.LLMBase:
    return llmbase.connect(url, migrate=False, ingest_spool_dir=tmp_path / "spool", **settings)


def test_log_only_enqueues_and_flush_stores(client: llmbase.LLMBase, db_url: str) -> None:
    before = time.perf_counter()
    rid = client.requests.log(model="gpt-4o", provider="openai", request_type="chat", latency_ms=12.5)
    assert time.perf_counter() - before < 0.05
    assert isinstance(rid, uuid.UUID) and rid.version == 7
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        row = conn.execute(
            "SELECT tenant_id, model, provider, request_type, status, latency_ms, user_id FROM llmbase.requests"
            " WHERE id = %s",
            (rid,),
        ).fetchone()
    assert row == (DEFAULT_TENANT, "gpt-4o", "openai", "chat", "success", 12.5, None)
    st = client.requests.stats()
    assert (st["enqueued"], st["written"], st["dropped"], st["errors"], st["queue_depth"]) == (1, 1, 0, 0, 0)


def test_rollups_and_profiles_equal_a_group_by_over_raw_rows(client: llmbase.LLMBase, db_url: str) -> None:
    users = [client.users.create(f"u{i}").id for i in range(4)]
    rng = random.Random(7)
    ids = [client.requests.log(**payload(rng, users=users)) for _ in range(3000)]
    assert client.requests.flush(60)
    with superuser(db_url) as conn:
        assert sorted(ids_in_db(conn)) == sorted(ids)
        assert rollup_mismatches(conn) == []
        assert profile_mismatches(conn) == []
        grains = conn.execute(
            "SELECT grain, sum(requests) FROM llmbase.request_rollups GROUP BY 1"
        ).fetchall()
        tenant_grains = conn.execute(
            "SELECT grain, sum(requests), count(*) FROM llmbase.request_rollups_tenant GROUP BY 1"
        ).fetchall()
        keys = conn.execute(
            "SELECT count(DISTINCT (grain, bucket_start, model, provider, request_type))"
            " FROM llmbase.request_rollups"
        ).fetchone()
    assert dict(grains) == {"hour": 3000, "day": 3000}
    # The tenant level (checked row by row by rollup_mismatches): one row per key without the user.
    assert {g: n for g, n, _ in tenant_grains} == {"hour": 3000, "day": 3000}
    assert keys is not None and sum(rows for _, _, rows in tenant_grains) == keys[0]


def test_users_by_external_id_and_tenants_by_slug(client: llmbase.LLMBase, db_url: str) -> None:
    tenant = client.admin().tenants.create("acme").id
    alice = client.tenant("acme").user("alice")  # nothing resolved yet: the writer does it
    a1 = alice.requests.log(model="m1")
    a2 = client.tenant("acme").requests.log(model="m2", user="bob")
    a3 = client.tenant(tenant).requests.log(model="m3", user_id=None)
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        users = dict(
            conn.execute(
                "SELECT external_id, id FROM llmbase.users WHERE tenant_id = %s", (tenant,)
            ).fetchall()
        )
        rows = dict(
            (r[0], r[1:])
            for r in conn.execute(
                "SELECT id, tenant_id, user_id FROM llmbase.requests WHERE id = ANY(%s)", ([a1, a2, a3],)
            ).fetchall()
        )
    assert set(users) >= {"alice", "bob"}
    assert rows[a1] == (tenant, users["alice"])
    assert rows[a2] == (tenant, users["bob"])
    assert rows[a3] == (tenant, None)
    # The same external ids again: no new users, same ids (cached or looked up).
    alice.requests.log(model="m1")
    assert alice.requests.flush(30)
    with superuser(db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM llmbase.users WHERE tenant_id = %s AND external_id = 'alice'", (tenant,)
        ).fetchone() == (1,)


def test_scoped_clients_log_only_for_their_tenant_and_user(client: llmbase.LLMBase, db_url: str) -> None:
    a = client.admin().tenants.create("ta").id
    b = client.admin().tenants.create("tb").id
    u = client.tenant(a).users.create("ua").id
    other = client.tenant(a).users.create("ub").id
    r1 = client.tenant(a).requests.log(model="x", tenant_id=b)
    r2 = client.tenant(a).user(u).requests.log(model="x", user_id=other, user="someone")
    r3 = client.admin().requests.log(model="x", tenant_id=b)  # operator scope may say which
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        got = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, tenant_id, user_id FROM llmbase.requests WHERE id = ANY(%s)", ([r1, r2, r3],)
            ).fetchall()
        }
    assert got == {r1: (a, None), r2: (a, u), r3: (b, None)}


def test_context_ids_are_attached(client: llmbase.LLMBase, db_url: str) -> None:
    conv = client.conversations.create(title="c").id
    with client.context(conversation=conv, tags=["ctx"], metadata={"from": "ctx", "k": 1}):
        rid = client.requests.log(model="m", tags=["call"], metadata={"k": 2})
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        row = conn.execute(
            "SELECT conversation_id, tags, metadata FROM llmbase.requests WHERE id = %s", (rid,)
        ).fetchone()
    assert row == (conv, ["ctx", "call"], {"from": "ctx", "k": 2})


def test_hostile_values_are_stored_by_the_documented_rule(client: llmbase.LLMBase, db_url: str) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "<opaque>"

    ten_mb = "y" * (10 * 1024 * 1024)
    ids = [
        client.requests.log(model="nul\x00model", error_message="err\x00\ud800", tags=["t\x00"]),
        client.requests.log(request_body={"big": ten_mb}, response_body=ten_mb),
        client.requests.log(
            metadata={"obj": Opaque(), "set": {3}, "bytes": b"raw", 5: "int key", "nan": float("nan")}
        ),
        client.requests.log(tokens_prompt=-1, latency_ms="slow", created_at="not a time", model=12345),
        client.requests.log(metadata="just a string", request_body={"\ud800key": "v\x00"}),
    ]
    assert client.requests.flush(60)
    with superuser(db_url) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, model, error_message, tags, request_body, response_body, bodies_truncated, metadata,"
                " tokens_prompt, latency_ms FROM llmbase.requests"
            ).fetchall()
        }
        assert conn.execute("SELECT count(*) FROM llmbase.ingest_dead_letters").fetchone() == (0,)
    assert set(rows) == set(ids)
    nul = rows[ids[0]]
    assert (nul[0], nul[1], nul[2]) == ("nul\ufffdmodel", "err\ufffd\ufffd", ["t\ufffd"])
    big = rows[ids[1]]
    assert big[5] is True
    assert big[3]["$truncated"] is True and big[3]["original_bytes"] > 10 * 1024 * 1024
    assert big[4]["$truncated"] is True and len(big[4]["head"]) == 256 * 1024
    assert rows[ids[2]][6] == {"obj": "<opaque>", "set": [3], "bytes": "b'raw'", "5": "int key", "nan": "NaN"}
    odd = rows[ids[3]]
    assert odd[0] == "12345" and odd[7] is None and odd[8] is None
    assert set(odd[6]["_llmbase"]["invalid"]) == {"tokens_prompt", "latency_ms", "created_at"}
    last = rows[ids[4]]
    assert last[6] == {"value": "just a string"} and last[3] == {"\ufffdkey": "v\ufffd"}
    st = client.requests.stats()
    assert (st["written"], st["errors"], st["dead_lettered"], st["dropped"]) == (5, 0, 0, 0)


def test_a_record_the_database_always_rejects_is_dead_lettered(
    db_url: str, tmp_path: Path, server_url: str
) -> None:
    with superuser(db_url) as conn:
        conn.execute(
            "ALTER TABLE llmbase.requests ADD CONSTRAINT no_poison CHECK (model IS DISTINCT FROM 'poison')"
        )
    c = connect(db_url, tmp_path, ingest_batch_size=100)
    try:
        ids = [c.requests.log(model="poison" if i % 97 == 13 else "fine", latency_ms=1.0) for i in range(500)]
        t0 = time.monotonic()
        assert c.requests.flush(60)
        st = c.requests.stats()
    finally:
        c.close()
    poison = {ids[i] for i in range(500) if i % 97 == 13}
    with superuser(db_url) as conn:
        stored = set(ids_in_db(conn))
        dead = conn.execute(
            "SELECT id, kind, attempts, error, payload FROM llmbase.ingest_dead_letters"
        ).fetchall()
        assert rollup_mismatches(conn) == []
    assert stored == set(ids) - poison
    assert {d[0] for d in dead} == poison
    assert all(d[1] == "request" and d[2] == 3 and "no_poison" in d[3] for d in dead)
    assert json.loads(dead[0][4])["r"]["model"] == "poison"
    assert (st["dead_lettered"], st["written"], st["dropped"]) == (len(poison), 500 - len(poison), 0)
    assert time.monotonic() - t0 < 30


def test_replay_of_stored_records_is_idempotent(client: llmbase.LLMBase, db_url: str) -> None:
    rng = random.Random(3)
    payloads = [payload(rng) for _ in range(400)]
    for p in payloads:
        p["id"] = uuid.uuid4()
    for p in payloads:
        client.requests.log(**dict(p))
    assert client.requests.flush(30)
    # The same records arrive again through the spool (as after an ambiguous commit).
    writer = client.database.ingest()
    n = Normaliser(body_max_bytes=1 << 20, metadata_max_bytes=1 << 20, scrub=True)
    frames = [encode(n.request(DEFAULT_TENANT, dict(p))) for p in payloads[:250]]
    writer._spool.append(frames, sync=True)
    assert client.requests.flush(30)
    st = client.requests.stats()
    assert st["duplicates"] == 250 and st["replayed"] == 250
    with superuser(db_url) as conn:
        assert len(ids_in_db(conn)) == 400
        assert rollup_mismatches(conn) == []
    # A batch logged again with ids that exist (caller-given) takes the idempotent path too.
    for p in payloads[:10]:
        client.requests.log(**dict(p))
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        assert len(ids_in_db(conn)) == 400
        assert rollup_mismatches(conn) == []


def test_a_full_queue_spills_to_the_spool_and_nothing_is_lost(db_url: str, tmp_path: Path) -> None:
    c = connect(db_url, tmp_path, ingest_queue_max=10, ingest_batch_size=50)
    try:
        ids = [c.requests.log(model="burst", latency_ms=float(i)) for i in range(3000)]
        assert c.requests.flush(60)
        st = c.requests.stats()
    finally:
        c.close()
    assert st["spooled"] > 0 and st["replayed"] == st["spooled"] and st["dropped"] == 0
    with superuser(db_url) as conn:
        stored = ids_in_db(conn)
        assert rollup_mismatches(conn) == []
    assert len(stored) == 3000 and set(stored) == set(ids)
    assert list((tmp_path / "spool").glob("*.seg")) == []


def test_unreachable_database_spools_redacted_records_then_replays(db_url: str, tmp_path: Path) -> None:
    down = connect(UNREACHABLE, tmp_path)
    ids = [
        down.requests.log(
            model="m",
            request_body={"messages": [{"content": f"my key is {SECRET}"}], "api_key": "hunter2-plain"},
            response_body={"headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz"}},
            metadata={"openai_api_key": SECRET},
            error_message=f"Incorrect API key provided: {SECRET}",
        )
        for _ in range(50)
    ]
    assert down.requests.flush(1) is False  # nowhere to store them: they wait in the spool
    st = down.requests.stats()
    assert st["spooled"] == 50 and st["dropped"] == 0 and st["db_available"] is False
    assert st["last_error"]
    down.close()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*.seg"))
    assert blob.count(b"[REDACTED]") >= 50
    for secret in (SECRET.encode(), b"hunter2-plain", b"abcdefghijklmnopqrstuvwxyz"):
        assert secret not in blob
    # A process that can reach the database replays the spool on its own.
    up = connect(db_url, tmp_path)
    try:
        assert up.requests.flush(30)
        assert up.requests.stats()["replayed"] == 50
    finally:
        up.close()
    with superuser(db_url) as conn:
        rows = conn.execute(
            "SELECT id, request_body::text || response_body::text || metadata::text || error_message"
            " FROM llmbase.requests"
        ).fetchall()
    assert {r[0] for r in rows} == set(ids)
    assert all(SECRET not in r[1] and "hunter2-plain" not in r[1] and MARK in r[1] for r in rows)
    assert list((tmp_path / "spool").glob("*.seg")) == []


def test_redaction_hook_runs_before_the_database(db_url: str, tmp_path: Path) -> None:
    seen: list[str] = []

    def hook(kind: str, p: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(kind)
        if p.get("model") == "explode":
            raise RuntimeError("hook bug")
        p["request_body"] = {"replaced": True}
        p.setdefault("metadata", {})["customer"] = "***"
        return None

    c = connect(db_url, tmp_path, redact=hook)
    try:
        ok = c.requests.log(model="m", request_body={"ssn": "123-45-6789"}, metadata={"customer": "Ann"})
        bad = c.requests.log(model="explode", request_body={"ssn": "123"}, latency_ms=5.0)
        assert c.requests.flush(30)
        st = c.requests.stats()
    finally:
        c.close()
    with superuser(db_url) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, request_body, metadata, latency_ms FROM llmbase.requests"
            ).fetchall()
        }
    assert rows[ok][:2] == ({"replaced": True}, {"customer": "***"})
    assert rows[bad] == (None, {"_llmbase": {"redaction_failed": "RuntimeError"}}, 5.0)
    assert seen == ["request", "request"] and st["errors"] == 1


def test_runs_iterations_tool_calls_and_conversation_completion(client: llmbase.LLMBase, db_url: str) -> None:
    conv = client.conversations.create(title="agent").id
    run_id = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(seconds=5)
    enqueue(
        client,
        "run",
        {"id": run_id, "name": "answer", "status": "running", "started_at": start, "user": "ann"},
    )
    enqueue(client, "iteration", {"run_id": run_id, "iteration": 1, "started_at": start, "api_ms": 10.0})
    tool = uuid.uuid4()
    enqueue(
        client,
        "tool_call",
        {"id": tool, "run_id": run_id, "iteration": 1, "name": "search", "duration_ms": 4},
    )
    enqueue(client, "iteration", {"run_id": run_id, "iteration": 1, "ended_at": start, "total_ms": 20.0})
    enqueue(client, "tool_call", {"id": tool, "run_id": run_id, "name": "again"})  # idempotent
    enqueue(client, "iteration", {"run_id": uuid.uuid4(), "iteration": 1})  # no such run: dead letter
    assert client.requests.flush(30)
    enqueue(
        client,
        "run",
        {
            "id": run_id,
            "status": "success",
            "ended_at": start + timedelta(seconds=2),
            "total_ms": 2000.4,
            "iteration_count": 1,
            "api_ms": 10.0,
            "tool_ms": 4.0,
            "conversation_id": conv,
        },
    )
    enqueue(client, "run", {"id": run_id, "status": "running", "started_at": start})  # a late replay
    enqueue(client, "run", {"name": "no id"})  # invalid: straight to dead letters
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        run = conn.execute(
            "SELECT r.name, r.status, r.total_ms, r.iteration_count, r.tool_ms, u.external_id"
            " FROM llmbase.runs r JOIN llmbase.users u ON u.tenant_id = r.tenant_id AND u.id = r.user_id"
        ).fetchone()
        it = conn.execute("SELECT api_ms, total_ms, ended_at FROM llmbase.run_iterations").fetchone()
        tools = conn.execute("SELECT name, duration_ms FROM llmbase.run_tool_calls").fetchall()
        conv_row = conn.execute(
            "SELECT completed_at, total_time_ms, total_iterations FROM llmbase.conversations WHERE id = %s",
            (conv,),
        ).fetchone()
        dead = conn.execute("SELECT kind FROM llmbase.ingest_dead_letters ORDER BY 1").fetchall()
    assert run == ("answer", "success", 2000.4, 1, 4.0, "ann")
    assert it == (10.0, 20.0, start)
    assert tools == [("search", 4.0)]
    assert conv_row == (start + timedelta(seconds=2), 2000, 1)
    assert dead == [("iteration",), ("run",)]


def _child(client: llmbase.LLMBase, n: int, out: Any) -> None:
    ids = [str(client.requests.log(model="child", latency_ms=1.0)) for _ in range(n)]
    out.put(ids)
    # No flush: the exit hook of the forked worker delivers what is queued.


def test_forked_workers_all_deliver(db_url: str, tmp_path: Path) -> None:
    c = connect(db_url, tmp_path)
    try:
        parent = [c.requests.log(model="parent") for _ in range(300)]  # pending at fork time
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        procs = [ctx.Process(target=_child, args=(c, 700, out)) for _ in range(4)]
        for p in procs:
            p.start()
        children = [uuid.UUID(i) for _ in procs for i in out.get(timeout=60)]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        parent += [c.requests.log(model="parent") for _ in range(300)]
        assert c.requests.flush(60)
    finally:
        c.close()
    with superuser(db_url) as conn:
        stored = ids_in_db(conn)
        assert rollup_mismatches(conn) == []
    assert len(stored) == len(set(stored)) == 600 + 2800
    assert set(stored) == set(parent) | set(children)


def test_close_flushes_and_later_logs_wait_in_the_spool(db_url: str, tmp_path: Path) -> None:
    c = connect(db_url, tmp_path)
    first = [c.requests.log(model="before close") for _ in range(20)]
    requests = c.requests
    c.close()
    late = requests.log(model="after close")
    with superuser(db_url) as conn:
        assert set(ids_in_db(conn)) == set(first)
    assert requests.stats()["spooled"] == 1
    again = connect(db_url, tmp_path)
    try:
        assert again.requests.flush(30)
    finally:
        again.close()
    with superuser(db_url) as conn:
        assert set(ids_in_db(conn)) == {*first, late}


async def test_async_client_logs_and_flushes(aclient: llmbase.AsyncLLMBase, db_url: str) -> None:
    rid = aclient.requests.log(model="async", tokens_prompt=3, tokens_completion=4, cost_usd=Decimal("0.5"))
    assert await aclient.requests.flush(30)
    with superuser(db_url) as conn:
        assert conn.execute(
            "SELECT tokens_total, cost_usd FROM llmbase.requests WHERE id = %s", (rid,)
        ).fetchone() == (7, Decimal("0.5"))


def test_log_never_raises(client: llmbase.LLMBase) -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no")

    rid = client.requests.log(id="not-a-uuid", model=Evil(), metadata={"x": Evil()}, request_body=Evil())
    assert isinstance(rid, uuid.UUID)
    assert client.requests.flush(30)
    assert client.requests.stats()["dropped"] == 0


def test_the_writer_connection_is_the_owner_in_operator_scope(client: llmbase.LLMBase, db_url: str) -> None:
    client.requests.log(model="x")
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        names = [r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity").fetchall()]
        assert "llmbase-writer" in names
        # The app role can read the log (RLS) but never write it.
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE llmbase_app")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    "INSERT INTO llmbase.requests (tenant_id, created_at, id, request_type)"
                    " VALUES (%s, now(), %s, 'chat')",
                    (DEFAULT_TENANT, uuid.uuid4()),
                )


def test_calls_logged_without_a_cost_are_priced_in_the_writer(client: llmbase.LLMBase, db_url: str) -> None:
    client.prices.set("house-model", input_per_mtok=1, output_per_mtok=2)
    priced = client.requests.log(model="house-model", tokens_prompt=1_000_000, tokens_completion=500_000)
    given = client.requests.log(model="house-model", tokens_prompt=10, cost_usd=Decimal("0.25"))
    unknown = client.requests.log(model="no-such-model-anywhere", tokens_prompt=10, tokens_completion=1)
    assert client.requests.flush(30)
    with superuser(db_url) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, cost_usd, cost_source, cost_unknown FROM llmbase.requests"
            ).fetchall()
        }
        assert rollup_mismatches(conn) == []
    assert rows[priced] == (Decimal("2.0000000000"), "override", False)
    assert rows[given] == (Decimal("0.2500000000"), None, False)
    assert rows[unknown] == (None, None, True)
