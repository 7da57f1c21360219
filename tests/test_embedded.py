"""The embedded server: cold start, tuning, reuse across processes, clean stop."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

import llmbase
from llmbase.embedded import EmbeddedServer, tuning


def _start_time(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    assert row is not None
    return str(row[0])


def test_cold_start_tuning_reuse_and_stop(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    server = EmbeddedServer(data)
    url = server.start()
    assert url.split("?")[0].endswith("/llmbase")
    assert server.started_in is not None and server.started_in < 30
    with psycopg.connect(url) as conn:
        settings = dict(
            conn.execute("SELECT name, setting || coalesce(unit, '') FROM pg_settings").fetchall()
        )
        assert conn.execute("SHOW max_wal_size").fetchone() == ("8GB",)
        assert conn.execute("SHOW jit").fetchone() == ("off",)
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("18")  # type: ignore[index]
    assert settings["shared_buffers"] != "163848kB"  # not the 128MB default
    assert (data / "llmbase.conf").read_text().count("=") == len(tuning())

    # A second process joins the running server instead of starting another.
    code = textwrap.dedent(
        f"""
        import psycopg
        from llmbase.embedded import EmbeddedServer
        s = EmbeddedServer({str(data)!r})
        url = s.start()
        with psycopg.connect(url) as c:
            print(c.execute("SELECT pg_postmaster_start_time()::text").fetchone()[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _start_time(url)
    assert server.is_running()  # the other process's exit did not stop it: we still hold it

    server.release()  # last holder gone: the server stops cleanly
    deadline = time.monotonic() + 10
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.is_running()
    assert not (data / "postmaster.pid").exists()


def test_connect_without_url_uses_embedded_and_migrates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMBASE_DATABASE_URL", raising=False)
    with llmbase.connect(data_dir=tmp_path / "pg") as db:
        conv = db.conversations.create(title="embedded")
        assert db.conversations.get(conv.id).title == "embedded"
    # data survives a restart of the server
    with llmbase.connect(data_dir=tmp_path / "pg") as db:
        assert db.conversations.get(conv.id).title == "embedded"
    assert not EmbeddedServer(tmp_path / "pg").is_running()


def test_explicit_stop(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "pg", cleanup_mode=None)
    server.start()
    assert server.is_running()
    EmbeddedServer(tmp_path / "pg").stop()
    assert not server.is_running()
