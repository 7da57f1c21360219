"""The database goes away while records are being logged: stopped cleanly, or its
postmaster killed with SIGKILL mid-batch. Records wait in the spool and are replayed when it
is back: none missing, none twice, rollups exact. Uses its own embedded server (the shared
one must not be stopped)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase import migrate
from llmbase.embedded import EmbeddedServer
from test_ingest_support import payload, profile_mismatches, rollup_mismatches, superuser

Server = tuple[EmbeddedServer, str]


@pytest.fixture(scope="module")
def dedicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = EmbeddedServer(tmp_path_factory.mktemp("outage") / "pg")
    url = srv.start()
    migrate.upgrade(url)
    yield srv, url
    with contextlib.suppress(Exception):
        srv.stop()
    with contextlib.suppress(Exception):
        srv.release()


@pytest.fixture
def server(dedicated: Server) -> Server:
    srv, url = dedicated
    if not srv.is_running():
        restart(srv, url)
    with superuser(url) as conn:
        conn.execute(
            "TRUNCATE llmbase.requests, llmbase.request_rollups, llmbase.request_rollups_tenant,"
            " llmbase.ingest_dead_letters,"
            " llmbase.runs CASCADE"
        )
        conn.execute(
            "UPDATE llmbase.user_profiles SET request_count = 0, total_tokens = 0, total_cost_usd = 0"
        )
    return srv, url


def restart(srv: EmbeddedServer, url: str, timeout: float = 90) -> None:
    """Start the server again (after SIGKILL the old backends take a moment to go)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            srv.start()
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def postmaster_pid(srv: EmbeddedServer) -> int:
    return int((srv.data_dir / "postmaster.pid").read_text().split()[0])


def log_paced(client: llmbase.LLMBase, n: int, per_second: float, ids: list[uuid.UUID], seed: int) -> None:
    rng = random.Random(seed)
    users = [uuid.UUID(int=1)]  # the default user (exists): profiles get bumped too
    start = time.monotonic()
    for i in range(n):
        ids.append(client.requests.log(**payload(rng, users=users)))
        if i % 50 == 49:
            ahead = (i + 1) / per_second - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def check_exactly_once(url: str, ids: list[uuid.UUID]) -> None:
    with superuser(url) as conn:
        n, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM llmbase.requests"
        ).fetchone() or (0, 0)
        stored = {r[0] for r in conn.execute("SELECT id FROM llmbase.requests").fetchall()}
        assert rollup_mismatches(conn) == []
        assert profile_mismatches(conn) == []
    missing = set(ids) - stored
    assert not missing, f"{len(missing)} records missing"
    assert n == distinct == len(ids) == len(set(ids)), (n, distinct, len(ids))


def run_stop_start(server: Server, tmp_path: Path, n: int, per_second: float) -> dict[str, Any]:
    srv, url = server
    client = llmbase.connect(url, migrate=False, ingest_spool_dir=tmp_path / "spool", ingest_batch_size=500)
    ids: list[uuid.UUID] = []
    outage: list[float] = []

    def stop_and_start() -> None:
        while len(ids) < n // 5:
            time.sleep(0.01)
        outage.append(time.monotonic())
        srv.stop()
        time.sleep(1.5)
        restart(srv, url)
        outage.append(time.monotonic())

    t = threading.Thread(target=stop_and_start)
    t.start()
    try:
        log_paced(client, n, per_second, ids, seed=n)
        t.join(120)
        assert client.requests.flush(120)
        st = client.requests.stats()
    finally:
        client.close()
    assert len(outage) == 2
    check_exactly_once(url, ids)
    assert st["spooled"] > 0 and st["replayed"] >= st["spooled"]
    assert (st["dropped"], st["dead_lettered"], st["written"]) == (0, 0, n)
    assert list((tmp_path / "spool").glob("*.seg")) == []
    return st


def test_stop_database_while_logging(server: Server, tmp_path: Path) -> None:
    run_stop_start(server, tmp_path, 5000, per_second=2000)


@pytest.mark.slow
def test_stop_database_while_logging_50k(server: Server, tmp_path: Path) -> None:
    run_stop_start(server, tmp_path, 50_000, per_second=8000)


def run_kill(server: Server, tmp_path: Path, n: int) -> None:
    srv, url = server
    client = llmbase.connect(url, migrate=False, ingest_spool_dir=tmp_path / "spool", ingest_batch_size=1000)
    try:
        acked: list[uuid.UUID] = []
        log_paced(client, 2000, 20_000, acked, seed=1)
        assert client.requests.flush(60)  # these are acknowledged: they must survive the crash
        ids: list[uuid.UUID] = []
        t = threading.Thread(target=log_paced, args=(client, n, 5000, ids, 2))
        t.start()
        # Kill once the writer is busy: batches are being written while more are logged.
        base = client.requests.stats()["batches"]
        deadline = time.monotonic() + 30
        while client.requests.stats()["batches"] < base + 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(postmaster_pid(srv), signal.SIGKILL)
        time.sleep(0.5)
        restart(srv, url)
        t.join(120)
        assert client.requests.flush(120)
        st = client.requests.stats()
    finally:
        client.close()
    check_exactly_once(url, acked + ids)
    assert st["dropped"] == 0 and st["dead_lettered"] == 0


def test_kill_postmaster_mid_batch(server: Server, tmp_path: Path) -> None:
    run_kill(server, tmp_path, 3000)


@pytest.mark.slow
def test_kill_postmaster_mid_batch_large(server: Server, tmp_path: Path) -> None:
    run_kill(server, tmp_path, 40_000)
