"""Test fixtures: one embedded server per run, the schema built once into a template
database, and a fresh clone of it per test (CREATE DATABASE ... TEMPLATE: a few ms)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import llmbase
from llmbase import migrate
from llmbase.embedded import EmbeddedServer

MIGRATIONS = Path(migrate.SCRIPT_LOCATION)
DATA_DIR = Path(os.environ.get("LLMBASE_TEST_DATA_DIR", f"/tmp/llmbase-test-{os.getuid()}/pgdata"))
BUILD_LOCK = 7_236_711_251_118


def with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _migrations_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(MIGRATIONS.rglob("*")):
        if p.suffix in (".sql", ".py") and "__pycache__" not in p.parts and p.name != "schema.sql":
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The embedded server's admin URL (database 'postgres')."""
    DATA_DIR.parent.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(DATA_DIR)
    url = server.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK,))
        # Supabase's PostgREST roles, so the grants for them are exercised.
        for role, attrs in (
            ("anon", "NOLOGIN"),
            ("authenticated", "NOLOGIN"),
            ("service_role", "NOLOGIN BYPASSRLS"),
        ):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                conn.execute(f"CREATE ROLE {role} {attrs}")
        conn.execute("SELECT pg_advisory_unlock(%s)", (BUILD_LOCK,))
    yield url
    server.release()


@pytest.fixture(scope="session")
def template_db(server_url: str) -> str:
    """Name of a template database migrated to head (built once per migrations content)."""
    name = f"llmbase_tpl_{_migrations_hash()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                building = name + "_build"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{building}"')
                migrate.upgrade(with_db(server_url, building))
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
                conn.execute(f'ALTER DATABASE "{name}" WITH is_template true')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (BUILD_LOCK,))
    return name


def _create_db(server_url: str, template: str | None) -> str:
    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(server_url, autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_db(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh database at head, dropped after the test."""
    name = _create_db(server_url, template_db)
    yield with_db(server_url, name)
    _drop_db(server_url, name)


@pytest.fixture(scope="module")
def module_db_url(server_url: str, template_db: str) -> Iterator[str]:
    """A fresh clone of the template shared by one test module (seeded once, read many times)."""
    name = _create_db(server_url, template_db)
    try:
        yield with_db(server_url, name)
    finally:
        _drop_db(server_url, name)


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """URL of a fresh, empty database (no migrations applied)."""
    name = _create_db(server_url, None)
    yield with_db(server_url, name)
    _drop_db(server_url, name)


@pytest.fixture
def client(db_url: str) -> Iterator[llmbase.LLMBase]:
    c = llmbase.connect(db_url, migrate=False)
    yield c
    c.close()


@pytest.fixture
async def aclient(db_url: str) -> AsyncIterator[llmbase.AsyncLLMBase]:
    c = llmbase.connect_async(db_url, migrate=False)
    yield c
    await c.aclose()
