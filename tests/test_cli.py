"""The CLI: every command has help text; commands are thin shells that work end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from llmbase.cli import app

runner = CliRunner()


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):  # a group
        for name, sub in cmd.commands.items():
            out.extend(_walk(sub, (*path, name)))
    return out


def test_every_command_has_help_text() -> None:
    commands = _walk(get_command(app))
    assert len(commands) > 15
    for path, cmd in commands:
        assert (cmd.help or "").strip(), f"`llmbase {' '.join(path)}` has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"option {param.name} of {' '.join(path)} has no help"


def invoke(db_url: str, *args: str) -> Result:
    return runner.invoke(app, [*args, "--database-url", db_url], catch_exceptions=False)


def test_tenants_users_keys_flow(db_url: str) -> None:
    r = invoke(db_url, "tenants", "create", "acme", "--name", "Acme")
    assert r.exit_code == 0 and "created tenant acme" in r.output
    r = invoke(db_url, "tenants", "create", "acme")
    assert r.exit_code == 1 and "exists" in r.output
    r = invoke(db_url, "tenants", "list", "--json")
    assert {t["slug"] for t in json.loads(r.output)} == {"default", "acme"}
    r = invoke(db_url, "users", "create", "alice", "--tenant", "acme", "--email", "a@acme.test")
    assert r.exit_code == 0
    r = invoke(db_url, "users", "list", "--tenant", "acme", "--json")
    assert [u["external_id"] for u in json.loads(r.output)] == ["alice"]
    r = invoke(db_url, "keys", "create", "bot", "--tenant", "acme", "--scope", "ingest", "--json")
    created = json.loads(r.output)
    assert created["secret"].startswith("llmb_") and created["key"]["scopes"] == ["ingest"]
    r = invoke(db_url, "keys", "list", "--tenant", "acme", "--json")
    listed = json.loads(r.output)
    assert len(listed) == 1 and "secret" not in json.dumps(listed)
    r = invoke(db_url, "keys", "revoke", listed[0]["id"], "--tenant", "acme")
    assert r.exit_code == 0
    assert json.loads(invoke(db_url, "keys", "list", "--tenant", "acme", "--json").output) == []
    r = invoke(db_url, "tenants", "delete", "acme", "--yes")
    assert r.exit_code == 0
    r = invoke(db_url, "users", "list", "--tenant", "acme")
    assert r.exit_code == 1 and "not found" in r.output


def test_settings_set_rejects_bad_files_and_keeps_old(db_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"default_model": "gpt-4o", "retrieval": {"top_k": 3}}))
    assert invoke(db_url, "settings", "set", str(good)).exit_code == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"retrieval": {"top_k": "many"}}))
    r = invoke(db_url, "settings", "set", str(bad))
    assert r.exit_code == 1 and "retrieval.top_k" in r.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    r = invoke(db_url, "settings", "set", str(broken))
    assert r.exit_code == 1 and "not valid JSON" in r.output
    shown = json.loads(invoke(db_url, "settings", "show").output)
    assert shown["version"] == 1 and shown["settings"]["retrieval"]["top_k"] == 3


def test_migrate_status_sql_and_up(db_url: str, empty_db_url: str) -> None:
    r = invoke(db_url, "migrate", "status")
    assert r.exit_code == 0 and "pending  none" in r.output
    r = invoke(empty_db_url, "migrate", "status")
    assert r.exit_code == 3
    r = invoke(empty_db_url, "migrate", "up")
    from llmbase import migrate as m

    assert r.exit_code == 0 and f"migrated base -> {m.head()}" in r.output
    assert invoke(empty_db_url, "migrate", "status").exit_code == 0
    r = runner.invoke(app, ["migrate", "sql"])
    assert r.exit_code == 0
    assert "CREATE TABLE llmbase.conversations" in r.output
    assert "alembic_version" in r.output


def test_seed_and_up_once(db_url: str) -> None:
    r = invoke(db_url, "seed", "--users", "2", "--conversations", "1")
    assert r.exit_code == 0 and "3 tenants" in r.output
    r = invoke(db_url, "up", "--once", "--demo")
    assert r.exit_code == 0 and "llmbase is up" in r.output and "already has data" in r.output
    r = invoke(db_url, "db", "status")
    assert r.exit_code == 0 and "PostgreSQL 18" in r.output and "pgvector" in r.output


def test_db_url_prints_the_url(db_url: str) -> None:
    r = invoke(db_url, "db", "url")
    assert r.output.strip() == db_url


@pytest.mark.parametrize("args", [["migrate", "down"], ["tenants", "delete", "x"]])
def test_destructive_commands_ask_first(db_url: str, args: list[str]) -> None:
    r = runner.invoke(app, [*args, "--database-url", db_url], input="n\n")
    assert r.exit_code == 1 and "Abort" in r.output


def test_cli_reference_is_current() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "tools" / "gen_cli_docs.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout


def test_db_psql_opens_psql_on_the_database(db_url: str) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "llmbase", "db", "psql", "--database-url", db_url],
        input="SELECT slug FROM llmbase.tenants;\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "default" in out.stdout


def test_up_runs_until_interrupted(db_url: str) -> None:
    import signal
    import subprocess
    import sys

    with subprocess.Popen(
        [sys.executable, "-m", "llmbase", "up", "--database-url", db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        assert any("llmbase is up" in x for x in lines)
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopping" in rest
