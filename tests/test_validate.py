"""`llmbase migrate validate`: passes at head, and names what breaks when the schema drifts."""

from __future__ import annotations

import json

import psycopg
from typer.testing import CliRunner

from llmbase import migrate
from llmbase.cli import app
from llmbase.validate import CATEGORIES, Report, validate


def _execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def _failed(report: Report, category: str) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.failed_in(category)]


def test_passes_at_head(db_url: str) -> None:
    report = validate(db_url)
    assert report.ok, report.failures
    assert [r.category for r in report.categories()] == list(CATEGORIES)
    by_cat = {r.category: r for r in report.categories()}
    assert by_cat["Tables"].total >= 10
    assert by_cat["RLS"].passed == by_cat["RLS"].total > 20
    assert by_cat["Security"].failed == 0


def test_dropped_index_is_named(db_url: str) -> None:
    _execute(db_url, "DROP INDEX llmbase.feedback_user")
    report = validate(db_url)
    assert not report.ok
    assert _failed(report, "Indexes") == ["index feedback_user on feedback: missing"]


def test_unforced_rls_is_detected(db_url: str) -> None:
    _execute(db_url, "ALTER TABLE llmbase.messages NO FORCE ROW LEVEL SECURITY")
    report = validate(db_url)
    assert _failed(report, "RLS") == ["row level security enabled and forced on messages: not forced"]


def test_extra_policy_is_detected(db_url: str) -> None:
    _execute(db_url, "CREATE POLICY open_door ON llmbase.users FOR SELECT USING (true)")
    failed = _failed(validate(db_url), "RLS")
    assert failed == ["policy open_door on users: unexpected (not in the manifest)"]


def test_definer_without_search_path_is_a_security_failure(db_url: str) -> None:
    _execute(db_url, "ALTER FUNCTION llmbase.current_tenant_id() RESET search_path")
    report = validate(db_url)
    assert _failed(report, "Security") == [
        "SECURITY DEFINER llmbase.current_tenant_id() pins search_path: search_path not pinned"
    ]
    assert [c.name for c in report.failed_in("Functions")] == ["function llmbase.current_tenant_id()"]


def test_app_role_privileges_are_checked(db_url: str) -> None:
    _execute(db_url, "GRANT TRUNCATE ON llmbase.messages TO llmbase_app")
    failed = _failed(validate(db_url), "Security")
    assert failed == ["llmbase_app has no TRUNCATE privilege on llmbase tables: granted on messages"]


def test_app_role_owning_an_object_is_detected(db_url: str) -> None:
    _execute(db_url, "ALTER TABLE llmbase.feedback_summary OWNER TO llmbase_app")
    failed = _failed(validate(db_url), "Security")
    assert "llmbase_app owns no object: owns table llmbase.feedback_summary" in failed
    # An owner holds every privilege, so the privilege checks name the table too.
    truncate = "llmbase_app has no TRUNCATE privilege on llmbase tables"
    assert f"{truncate}: granted on feedback_summary" in failed


def test_definer_view_is_detected(db_url: str) -> None:
    _execute(db_url, "CREATE VIEW llmbase.all_users AS SELECT id FROM llmbase.users")
    report = validate(db_url)
    failed = _failed(report, "Security")
    assert len(failed) == 1
    assert failed[0].startswith("view all_users is security_invoker: runs with the owner's rights")
    assert _failed(report, "Tables") == ["view all_users: unexpected (not in the manifest)"]


def test_schema_behind_head_is_a_migrations_failure(db_url: str) -> None:
    revs = migrate.revisions()
    migrate.downgrade(db_url, revs[-2])
    report = validate(db_url)
    assert [c.name for c in report.failed_in("Migrations")] == ["schema revision is head"]
    with psycopg.connect(db_url) as conn:
        left = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'llmbase'")}
        left |= {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'llmbase'")}
    missing = {c.name for c in report.failed_in("Tables")}
    assert missing and all(
        name.split()[0] in ("table", "view") and name.split()[1] not in left for name in missing
    )


def test_cli_exit_codes(db_url: str) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["migrate", "validate", "--database-url", db_url])
    assert ok.exit_code == 0, ok.output
    assert "All validation tests passed" in ok.output
    assert "Security" in ok.output

    as_json = runner.invoke(app, ["migrate", "validate", "--json", "--database-url", db_url])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["ok"] is True

    _execute(db_url, "DROP INDEX llmbase.feedback_user")
    bad = runner.invoke(app, ["migrate", "validate", "--database-url", db_url])
    assert bad.exit_code == 1
    assert "feedback_user" in bad.output
    assert "All validation tests passed" not in bad.output


def test_cli_help() -> None:
    result = CliRunner().invoke(app, ["migrate", "validate", "--help"])
    assert result.exit_code == 0
    assert "manifest" in result.output


def test_empty_database_fails_cleanly(empty_db_url: str) -> None:
    report = validate(empty_db_url)
    assert not report.ok
    assert "table users: missing" in _failed(report, "Tables")
    assert [c.name for c in report.failed_in("Migrations")] == ["schema revision is head"]
