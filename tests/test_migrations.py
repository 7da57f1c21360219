"""Migrations tested like code: base -> head -> base, every step up and down twice, the
schema snapshot kept current, concurrent deploys, and the offline SQL script."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from llmbase import migrate, snapshot
from llmbase.cli import app
from llmbase.snapshot import Manifest
from llmbase.validate import validate

SCHEMA_SQL = Path(migrate.SCRIPT_LOCATION) / "schema.sql"
REGENERATE = "the schema snapshot is stale: run `python tools/snapshot.py` and commit the result"

# Roles and the other databases' grants must exist before a test downgrades to base, or
# 0001's downgrade may drop the cluster-wide roles another test is using.
pytestmark = pytest.mark.usefixtures("template_db")


def _fingerprint(url: str) -> Manifest:
    with psycopg.connect(url) as conn:
        return snapshot.read_catalog(conn)


def _assert_base(fp: Manifest) -> None:
    """After a full downgrade only the migration table is left in schema llmbase."""
    assert list(fp["tables"]) == ["alembic_version"]
    assert fp["functions"] == []
    assert fp["views"] == []
    assert fp["policies"] == []
    assert fp["triggers"] == []


def test_base_head_base(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, "head")
    at_head = _fingerprint(empty_db_url)
    assert migrate.status(empty_db_url).up_to_date
    assert {"conversations", "messages", "tenants", "users"} <= set(at_head["tables"])
    expected = snapshot.load_manifest()
    assert at_head["tables"] == expected["tables"], REGENERATE
    assert at_head["functions"] == expected["functions"], REGENERATE

    migrate.downgrade(empty_db_url, "base")
    _assert_base(_fingerprint(empty_db_url))
    assert migrate.status(empty_db_url).current is None


def test_each_step_up_and_down_twice(empty_db_url: str) -> None:
    url = empty_db_url
    seen: dict[str, Manifest] = {}

    def check(rev: str | None) -> None:
        fp = _fingerprint(url)
        assert migrate.current(url) == rev
        if rev is None:
            _assert_base(fp)
            return
        if rev not in seen:
            seen[rev] = fp
        assert fp == seen[rev], f"schema at {rev} differs from the first time it was reached"

    previous: str | None = None
    for rev in migrate.revisions():
        for _ in range(2):
            migrate.upgrade(url, rev)
            check(rev)
            migrate.downgrade(url, previous or "base")
            check(previous)
        migrate.upgrade(url, rev)
        check(rev)
        previous = rev

    assert previous == migrate.head()
    migrate.downgrade(url, "base")
    check(None)
    migrate.upgrade(url, "head")
    check(previous)
    # Each revision adds something: no two steps leave the same schema.
    prints = list(seen.values())
    assert all(a != b for i, a in enumerate(prints) for b in prints[i + 1 :])


def test_validate_passes_at_head(db_url: str) -> None:
    report = validate(db_url)
    assert report.ok, report.failures


def test_snapshot_is_current(db_url: str) -> None:
    committed = snapshot.normalise_dump(SCHEMA_SQL.read_text("utf-8"))
    assert committed == snapshot.dump_schema(db_url), REGENERATE
    head = migrate.head()
    assert f"(revision {head})" in SCHEMA_SQL.read_text("utf-8").splitlines()[0], REGENERATE
    with psycopg.connect(db_url) as conn:
        live = snapshot.read_catalog(conn, head=head)
    assert live == snapshot.load_manifest(), REGENERATE


_DEPLOY = "import sys; from llmbase import migrate; migrate.upgrade(sys.argv[1])"


def test_two_deploys_at_once(empty_db_url: str) -> None:
    """Two processes migrate one empty database together: both succeed, one does the work."""
    deploys = [
        subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", _DEPLOY, empty_db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in deploys:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert migrate.status(empty_db_url).up_to_date
    assert validate(empty_db_url).ok


def test_two_threads_at_once(empty_db_url: str) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def deploy() -> None:
        start.wait()
        try:
            migrate.upgrade(empty_db_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deploy, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert migrate.status(empty_db_url).up_to_date


def test_offline_sql_matches_alembic(empty_db_url: str, db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["migrate", "sql"])
    assert result.exit_code == 0, result.output
    script = tmp_path / "llmbase.sql"
    script.write_text(result.stdout)
    psql = subprocess.run(
        [str(snapshot.pg_tool("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1",
         "-f", str(script), "-d", empty_db_url],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert psql.returncode == 0, psql.stderr
    assert migrate.current(empty_db_url) == migrate.head()
    assert snapshot.dump_schema(empty_db_url) == snapshot.dump_schema(db_url)


def test_normalise_dump_drops_what_changes_between_runs() -> None:
    raw = (
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
        "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n"
        "CREATE TABLE llmbase.t (\n    id integer\n);\n\n\n\n"
        "CREATE FUNCTION llmbase.f() RETURNS void\n    LANGUAGE sql\n    AS $$\n"
        "    UPDATE x\n       SET a = 1;\n$$;\n\n\\unrestrict abc123\n"
    )
    assert snapshot.normalise_dump(raw) == (
        "CREATE TABLE llmbase.t (\n    id integer\n);\n\n"
        "CREATE FUNCTION llmbase.f() RETURNS void\n    LANGUAGE sql\n    AS $$\n"
        "    UPDATE x\n       SET a = 1;\n$$;\n"
    )
