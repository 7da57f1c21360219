"""Fixtures shared by the isolation and PostgREST tests: two tenants seeded once through the
SDK into a template database, cloned per test (or shared by read-only tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from _tenancy import Seeded, build_seeded, clone, drop_database


@pytest.fixture(scope="session")
def seeded(server_url: str, template_db: str) -> Iterator[tuple[str, Seeded, Seeded]]:
    """Tenants A and B seeded once (through the SDK) into a template database."""
    built = build_seeded(server_url, template_db)
    yield built
    drop_database(server_url, built[0])


@pytest.fixture
def db_url(server_url: str, seeded: tuple[str, Seeded, Seeded]) -> Iterator[str]:
    """Overrides conftest's: a fresh clone of the seeded template per test."""
    with clone(server_url, seeded[0]) as url:
        yield url


@pytest.fixture
def two(seeded: tuple[str, Seeded, Seeded]) -> tuple[Seeded, Seeded]:
    return seeded[1], seeded[2]


@pytest.fixture(scope="module")
def shared_url(server_url: str, seeded: tuple[str, Seeded, Seeded]) -> Iterator[str]:
    """One seeded clone for the tests that commit nothing (every attack is rolled back)."""
    with clone(server_url, seeded[0]) as url:
        yield url


@pytest.fixture
def admin(shared_url: str) -> Iterator[psycopg.Connection[Any]]:
    """Superuser connection to the shared clone (bypasses RLS): the ground truth."""
    with psycopg.connect(shared_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def raw(shared_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A second connection to the shared clone for scoped raw-SQL attacks (always rolled back)."""
    with psycopg.connect(shared_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def fresh_admin(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """Superuser connection to this test's own clone (the one `client` writes to)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def fresh_raw(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn
