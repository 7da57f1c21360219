"""API keys, users and tenants through the SDK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import llmbase
from llmbase import ConflictError, NotFound, PermissionDenied, ValidationError


def test_key_lifecycle_stores_only_a_hash(client: llmbase.LLMBase, db_url: str) -> None:
    created = client.keys.create("ingest bot", scopes=["ingest", "read"])
    assert created.secret.startswith("llmb_") and created.key.scopes == ["ingest", "read"]
    auth = client.keys.authenticate(created.secret)
    assert auth.key_id == created.key.id and auth.tenant_id == client.scope().tenant_id
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT * FROM llmbase.api_keys").fetchall()
    assert created.secret.split("_")[-1] not in repr(stored)
    listed = client.keys.list()
    assert [k.id for k in listed] == [created.key.id] and listed[0].last_used_at is not None

    client.keys.revoke(created.key.id)
    with pytest.raises(PermissionDenied):
        client.keys.authenticate(created.secret)
    assert client.keys.list() == []
    assert len(client.keys.list(include_revoked=True)) == 1


def test_key_rejections(client: llmbase.LLMBase) -> None:
    good = client.keys.create("k")
    tampered = good.secret[:-2] + ("AA" if not good.secret.endswith("AA") else "BB")
    expired = client.keys.create("old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    for bad in (tampered, expired.secret, "llmb_short", "not a key", ""):
        with pytest.raises(PermissionDenied):
            client.keys.authenticate(bad)
    with pytest.raises(ValidationError) as e:
        client.keys.create("k", scopes=["root"])
    assert e.value.field == "scopes"


def test_users_ensure_is_idempotent_and_delete_cascades(client: llmbase.LLMBase) -> None:
    a = client.users.ensure("zed", email="zed@example.com")
    assert client.users.ensure("zed").id == a.id
    with pytest.raises(ConflictError):
        client.users.create("zed")
    u = client.user("zed")
    conv = u.conversations.create()
    u.conversations.add_message(conv.id, role="user", content="x")
    assert client.users.get("zed").id == a.id
    updated = client.users.update(a.id, display_name="Zed", auth_id="auth-zed")
    assert updated.display_name == "Zed" and updated.auth_id == "auth-zed"
    prefs = u.users.set_preferences({"theme": "dark"})
    assert prefs.preferences == {"theme": "dark"}
    client.users.delete(a.id)
    with pytest.raises(NotFound):
        client.conversations.get(conv.id)
    with pytest.raises(NotFound):
        client.users.get(a.id)


def test_tenants_admin(client: llmbase.LLMBase) -> None:
    t = client.tenants.create("acme", name="Acme", metadata={"plan": "pro"})
    with pytest.raises(ConflictError):
        client.tenants.create("acme")
    with pytest.raises(ValidationError) as e:
        client.tenants.create("Not A Slug")
    assert e.value.field == "slug"
    assert {x.slug for x in client.tenants.list()} >= {"default", "acme"}
    assert client.tenant("acme").scope().tenant_id == t.id
    assert client.tenant(t.id).scope().tenant_id == t.id
    acme = client.tenant("acme")
    conv = acme.user("a").conversations.create()
    assert client.tenants.update(tenant_id=t.id, name="Acme Inc").name == "Acme Inc"
    client.tenants.delete(t.id)
    with pytest.raises(NotFound):
        client.tenants.get(t.id)
    with psycopg.connect(client.url) as conn:
        left = conn.execute("SELECT count(*) FROM llmbase.conversations WHERE id = %s", (conv.id,)).fetchone()
    assert left == (0,)


def test_default_tenant_and_user_exist(client: llmbase.LLMBase) -> None:
    assert client.scope().tenant_id is not None
    assert client.tenants.get(client.scope().tenant_id).slug == "default"
    assert client.users.get("default").display_name == "Default user"


def test_scoped_clients_cannot_manage_tenants(client: llmbase.LLMBase) -> None:
    other = client.tenants.create("victim")
    for scoped in (client.tenant("default"), client.user("mallory"), client.tenant("victim")):
        with pytest.raises(PermissionDenied):
            scoped.tenants.list()
        with pytest.raises(PermissionDenied):
            scoped.tenants.delete(other.id)
    assert client.tenants.get(other.id).slug == "victim"
    assert client.admin().tenants.get(other.id).slug == "victim"
