"""`llmbase settings import server_config.json`: seed 003's migrate_config.py done safely —
validate everything first, back the file up, write in one transaction, verify, safe twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import llmbase
from llmbase.cli import app
from llmbase.errors import NotFound, ValidationError
from llmbase.settings_import import import_settings

runner = CliRunner()

# The shape of a bot's server_config.json: settings per Discord server (guild) id.
CONFIG: dict[str, Any] = {
    "111111111111111111": {
        "prefix": "!",
        "allowed_channels": ["general", "help"],
        "admin_roles": ["mods"],
        "retrieval": {"top_k": 8, "match_threshold": 0.7},
        "rate_limits": {"requests_per_minute": 20},
        "custom": {"welcome": "hi"},
    },
    "222222222222222222": {"prefix": "?", "default_model": "gpt-4o-mini", "features": {"search": True}},
}


def _write(tmp_path: Path, data: Any, name: str = "server_config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _state(client: llmbase.LLMBase) -> dict[str, Any]:
    """Every tenant's slug -> (settings version, stored settings) and the audit log length."""
    admin = client.admin()
    out: dict[str, Any] = {}
    for t in admin.tenants.list(limit=1000):
        rec = client.tenant(t.id).settings.get()
        out[t.slug] = (rec.version, rec.settings.model_dump())
    out["#audit"] = len(admin.audit.list(limit=1000))
    return out


def test_import_creates_tenants_backs_up_verifies_and_is_safe_twice(
    client: llmbase.LLMBase, tmp_path: Path
) -> None:
    path = _write(tmp_path, CONFIG)
    report = import_settings(client, path, create_tenants=True)
    assert sorted(report.created_tenants) == sorted(CONFIG)
    assert sorted(report.changed) == sorted(CONFIG) and report.unchanged == []
    assert report.verified == 2
    assert report.backup == str(path) + ".backup"
    assert Path(report.backup).read_bytes() == path.read_bytes()
    guild = client.tenant("111111111111111111").settings.get()
    assert guild.version == 1
    assert guild.settings.prefix == "!" and guild.settings.allowed_channels == ["general", "help"]
    assert guild.settings.retrieval.top_k == 8 and guild.settings.rate_limits.requests_per_minute == 20
    assert guild.settings.custom == {"welcome": "hi"}
    (event,) = client.admin().audit.list(action="settings.import")
    assert event.object_id == str(path) and event.tenant_id is None
    assert sorted(event.details["changed"]) == sorted(CONFIG)
    assert len(client.tenant("111111111111111111").audit.list(action="settings.create")) == 1

    before = _state(client)
    again = import_settings(client, path, create_tenants=True)
    assert again.changed == [] and sorted(again.unchanged) == sorted(CONFIG) and again.verified == 2
    assert _state(client) == before  # no new version, no audit entry
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server_config.json", "server_config.json.backup"]

    # A changed file: only the changed tenant gets a new version; a second backup is kept.
    changed = json.loads(json.dumps(CONFIG))
    changed["222222222222222222"]["prefix"] = "$"
    path.write_text(json.dumps(changed), encoding="utf-8")
    third = import_settings(client, path)
    assert third.changed == ["222222222222222222"] and third.unchanged == ["111111111111111111"]
    assert client.tenant("222222222222222222").settings.get().version == 2
    assert client.tenant("111111111111111111").settings.get().version == 1
    assert len([p for p in tmp_path.iterdir() if ".backup" in p.name]) == 2


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{not json", "file"),
        ('["a", "list"]', "file"),
        ("{}", "file"),
        (json.dumps({"111111111111111111": {"prefix": "!", "colour": "red"}}), "111111111111111111.colour"),
        (
            json.dumps({"111111111111111111": {"retrieval": {"top_k": "8"}}}),
            "111111111111111111.retrieval.top_k",
        ),
        (
            json.dumps({"111111111111111111": {"retrieval": {"top_k": 1000}}}),
            "111111111111111111.retrieval.top_k",
        ),
        (json.dumps({"111111111111111111": {"temperature": 9}}), "111111111111111111.temperature"),
        (json.dumps({"111111111111111111": "not an object"}), "111111111111111111.settings"),
        (json.dumps({"Not A Slug!": {}}), "Not A Slug!"),
    ],
)
def test_bad_files_are_rejected_with_the_field_named_and_nothing_changes(
    client: llmbase.LLMBase, tmp_path: Path, content: str, field: str
) -> None:
    import_settings(client, _write(tmp_path, CONFIG, "first.json"), create_tenants=True)
    before = _state(client)
    # A valid entry before the bad one is not written either: all or nothing.
    if content.startswith('{"111'):
        data = {"222222222222222222": {"prefix": "#"}, **json.loads(content)}
        content = json.dumps(data)
    path = tmp_path / "server_config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValidationError) as err:
        import_settings(client, path, create_tenants=True)
    assert err.value.field == field
    assert _state(client) == before
    assert not (tmp_path / "server_config.json.backup").exists()


def test_unknown_tenants_need_create_tenants(client: llmbase.LLMBase, tmp_path: Path) -> None:
    client.admin().tenants.create("known")
    path = _write(tmp_path, {"known": {"prefix": "!"}, "unknown": {"prefix": "?"}})
    before = _state(client)
    with pytest.raises(NotFound):
        import_settings(client, path)
    assert _state(client) == before  # "known" was not written either: one transaction


def test_one_document_for_one_tenant_and_dry_run(client: llmbase.LLMBase, tmp_path: Path) -> None:
    path = _write(tmp_path, {"default_model": "claude-sonnet-4", "retrieval": {"top_k": 3}})
    dry = import_settings(client, path, tenant="default", dry_run=True)
    assert dry.changed == ["default"] and dry.backup is None and dry.verified == 0
    assert client.settings.get().version == 0 and not (tmp_path / "server_config.json.backup").exists()
    done = import_settings(client, path, tenant="default")
    assert done.changed == ["default"] and done.verified == 1
    assert client.settings.get().settings.default_model == "claude-sonnet-4"


def test_cli_import(client: llmbase.LLMBase, db_url: str, tmp_path: Path) -> None:
    path = _write(tmp_path, CONFIG)
    args = ["settings", "import", str(path), "--create-tenants", "--database-url", db_url]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "changed 2" in r.output and "verified 2" in r.output
    r = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0 and json.loads(r.output)["unchanged"] == sorted(CONFIG)
    (event,) = client.admin().audit.list(action="settings.import")
    assert event.actor.startswith("cli")
    bad = _write(tmp_path, {"111111111111111111": {"prefix": 5}}, "bad.json")
    r = runner.invoke(app, ["settings", "import", str(bad), "--database-url", db_url])
    assert r.exit_code == 1 and "111111111111111111.prefix" in r.output
