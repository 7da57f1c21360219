"""The operations commands: `llmbase stats`, `maintain`, `archive conversations`,
`delete tenant|user` (thin shells over llmbase.ops)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from typer.testing import CliRunner, Result

import llmbase
from llmbase.cli import app

runner = CliRunner()


def invoke(db_url: str, *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, [*args, "--database-url", db_url], input=input, catch_exceptions=False)


def count(db_url: str, q: str, *params: Any) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(q, params).fetchone()
        assert row is not None
        return int(row[0])


def test_stats_table_and_json(db_url: str) -> None:
    r = invoke(db_url, "stats")
    assert r.exit_code == 0, r.output
    assert "Largest tables" in r.output and "llmbase.requests" in r.output
    assert "request log:" in r.output and "connections:" in r.output
    r = invoke(db_url, "stats", "--json")
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert data["database_bytes"] > 0
    assert {"tables", "indexes", "vacuum", "connections", "request_log", "embeddings"} <= data.keys()


def test_maintain_dry_run_then_run(db_url: str) -> None:
    r = invoke(db_url, "maintain", "--dry-run", "--days-ahead", "30", "--json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output)
    assert plan["dry_run"] is True
    assert any(a["task"] == "partitions" and not a["done"] for a in plan["actions"])
    r = invoke(db_url, "maintain", "--days-ahead", "30")
    assert r.exit_code == 0, r.output
    assert "partitions" in r.output and "created" in r.output
    r = invoke(db_url, "maintain", "--dead-ratio", "2")
    assert r.exit_code == 2  # out of range: refused by the option itself


def test_archive_conversations_and_undo(client: llmbase.LLMBase, db_url: str) -> None:
    c = client.conversations.create(title="old").id
    with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "UPDATE llmbase.conversations SET updated_at = now() - interval '1 year' WHERE id = %s", (c,)
        )
    r = invoke(db_url, "archive", "conversations", "--older-than", "6months", "--dry-run")
    assert r.exit_code == 0 and "would archive 1 conversations" in r.output
    r = invoke(db_url, "archive", "conversations", "--older-than", "6months", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["count"] == 1
    assert count(db_url, "SELECT count(*) FROM llmbase.conversations WHERE is_archived") == 1
    r = invoke(db_url, "archive", "conversations", "--undo", res["run"])
    assert r.exit_code == 0 and "unarchived 1 conversations" in r.output
    assert count(db_url, "SELECT count(*) FROM llmbase.conversations WHERE is_archived") == 0
    for bad in (["--older-than", "soon"], [], ["--older-than", "6months", "--undo", res["run"]]):
        r = invoke(db_url, "archive", "conversations", *bad)
        assert r.exit_code == 1, (bad, r.output)
    # The request-log retention commands of the group still work beside it.
    r = invoke(db_url, "archive", "--older-than", "90d", "--dry-run")
    assert r.exit_code == 0, r.output


def test_delete_tenant_asks_first(client: llmbase.LLMBase, db_url: str) -> None:
    t = client.admin().tenants.create("acme")
    client.tenant(t.id).conversations.create(title="x")
    r = invoke(db_url, "delete", "tenant", "acme", input="n\n")
    assert r.exit_code == 1 and "Aborted" in r.output
    assert count(db_url, "SELECT count(*) FROM llmbase.tenants WHERE id = %s", t.id) == 1
    r = invoke(db_url, "delete", "tenant", "acme", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["counts"]["llmbase.conversations"] == 1
    assert count(db_url, "SELECT count(*) FROM llmbase.tenants WHERE id = %s", t.id) == 1
    r = invoke(db_url, "delete", "tenant", "acme", "--yes")
    assert r.exit_code == 0, r.output
    assert "llmbase.conversations" in r.output and "audit entry" in r.output
    assert count(db_url, "SELECT count(*) FROM llmbase.conversations WHERE tenant_id = %s", t.id) == 0
    r = invoke(db_url, "delete", "tenant", "acme", "--yes")
    assert r.exit_code == 1 and "not found" in r.output


def test_delete_user(client: llmbase.LLMBase, db_url: str) -> None:
    alice = client.user("alice")
    alice.conversations.create(title="mine")
    uid = alice.scope().user_id
    r = invoke(db_url, "delete", "user", "alice", "--yes")
    assert r.exit_code == 1 and "tenant" in r.output  # an external id needs its tenant
    r = invoke(db_url, "delete", "user", "alice", "--tenant", "default", "--yes", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["id"] == str(uid) and out["counts"]["llmbase.conversations"] == 1
    assert count(db_url, "SELECT count(*) FROM llmbase.users WHERE id = %s", uid) == 0
