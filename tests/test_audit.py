"""The audit log: every administrative change is recorded with who, what, when, before and
after; the application role can insert and read but never update, delete or truncate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import llmbase
from llmbase.db import DEFAULT_TENANT
from llmbase.errors import PayloadTooLarge, ValidationError


def _app_conn(url: str, tenant: uuid.UUID = DEFAULT_TENANT) -> psycopg.Connection[Any]:
    """A connection acting as the application role in a tenant scope, as the SDK does."""
    conn = psycopg.connect(url)
    conn.execute(
        "SELECT set_config('role', 'llmbase_app', false), set_config('llmbase.tenant_id', %s, false)",
        (str(tenant),),
    )
    return conn


def test_admin_changes_are_recorded_with_before_and_after(client: llmbase.LLMBase) -> None:
    user = client.users.create("alice", email="a@example.com")
    client.users.update(user.id, display_name="Alice")
    client.users.update(user.id, display_name="Alice")  # no change: not recorded
    key = client.keys.create("ci", scopes=["read"])
    client.keys.authenticate(key.secret)  # bookkeeping (last_used_at): not recorded
    client.keys.revoke(key.key.id)
    client.settings.put({"default_model": "gpt-4o"})
    client.settings.patch({"temperature": 0.2})

    entries = list(client.audit.list())
    actions = [e.action for e in reversed(entries)]
    assert actions == [
        "user.create",
        "user.update",
        "api_key.create",
        "api_key.update",
        "settings.create",
        "settings.update",
    ]
    upd = next(e for e in entries if e.action == "user.update")
    assert upd.object_type == "user" and upd.object_id == str(user.id)
    assert upd.before is not None and upd.after is not None
    assert upd.before["display_name"] is None and upd.after["display_name"] == "Alice"
    assert upd.details == {"changed": ["display_name"]}
    assert upd.tenant_id == DEFAULT_TENANT
    assert upd.actor == "service" and upd.actor_user_id is None
    for e in entries:  # the key's hash never reaches the log
        assert "secret_hash" not in (e.before or {}) and "secret_hash" not in (e.after or {})
    revoke = next(e for e in entries if e.action == "api_key.update")
    assert revoke.details == {"changed": ["revoked_at"]}
    settings = next(e for e in entries if e.action == "settings.update")
    assert settings.before is not None and settings.after is not None
    assert settings.after["settings"] == {"default_model": "gpt-4o", "temperature": 0.2}


def test_a_deletion_is_one_entry_and_its_cascade_is_not_repeated(
    client: llmbase.LLMBase, db_url: str
) -> None:
    # Plain SQL: the row trigger records the user's deletion, not the cascaded key's.
    user = client.users.create("bob", email="bob@example.com")
    client.keys.create("bob's", user_id=user.id)
    with _app_conn(db_url) as conn:
        conn.execute("DELETE FROM llmbase.users WHERE id = %s", (user.id,))
        conn.commit()
    entries = list(client.audit.list())
    assert [e.action for e in reversed(entries)] == ["user.create", "api_key.create", "user.delete"]
    gone = entries[0]
    assert gone.after is None and gone.before is not None and gone.before["external_id"] == "bob"


def test_the_sdk_deletion_records_one_summary_and_redacts_the_users_entries(client: llmbase.LLMBase) -> None:
    user = client.users.create("carl", email="carl@example.com")
    client.keys.create("carl's", user_id=user.id)
    result = client.users.delete(user.id)
    entries = list(client.audit.list())
    assert [e.action for e in reversed(entries)] == ["user.create", "api_key.create", "user.delete"]
    summary = entries[0]
    assert summary.id == result.audit_id and summary.object_id == str(user.id) and summary.before is None
    assert summary.details["counts"]["llmbase.users"] == 1
    assert "carl" not in str([(e.before, e.after) for e in entries])  # the row images are erased


def test_tenant_lifecycle_is_recorded_and_a_deleted_tenant_leaves_an_operator_entry(
    client: llmbase.LLMBase,
) -> None:
    admin = client.admin()
    t = admin.tenants.create("acme", name="Acme")
    admin.tenants.update(tenant_id=t.id, name="Acme Inc")
    log = list(admin.audit.list(object_type="tenant", object_id=str(t.id)))
    assert [e.action for e in reversed(log)] == ["tenant.create", "tenant.update"]
    assert all(e.actor == "operator" and e.tenant_id == t.id for e in log)
    assert log[0].before is not None and log[0].before["name"] == "Acme"
    admin.tenants.delete(t.id)
    # The tenant's entries go with it; the deletion is one operator-level entry.
    (gone,) = admin.audit.list(object_type="tenant", object_id=str(t.id))
    assert gone.action == "tenant.delete" and gone.tenant_id is None
    assert gone.before is not None and gone.before["slug"] == "acme"
    assert gone.details["audit_entries_erased"] == 2


def test_the_application_role_cannot_change_or_remove_entries(client: llmbase.LLMBase, db_url: str) -> None:
    client.users.create("carol")
    before = [e.id for e in client.audit.list()]
    assert before
    for statement in (
        "UPDATE llmbase.audit_log SET actor = 'someone else'",
        "DELETE FROM llmbase.audit_log",
        "TRUNCATE llmbase.audit_log",
    ):
        with _app_conn(db_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    # Not even the owner, without the erasure functions.
    with psycopg.connect(db_url) as conn:
        for statement in ("UPDATE llmbase.audit_log SET actor = 'x'", "DELETE FROM llmbase.audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
            conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE llmbase.audit_log")
        conn.rollback()
        # The app role may not call the erasure functions either.
        conn.execute("SET ROLE llmbase_app")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT llmbase.erase_audit_tenant(%s)", (DEFAULT_TENANT,))
    assert [e.id for e in client.audit.list()] == before


def test_the_application_role_can_only_insert_its_own_tenant_and_self(
    client: llmbase.LLMBase, db_url: str
) -> None:
    other = client.admin().tenants.create("other").id
    with _app_conn(db_url) as conn:
        conn.execute(
            "INSERT INTO llmbase.audit_log (tenant_id, actor, action, object_type) VALUES (%s, 'me', 'x.y', 'x')",
            (DEFAULT_TENANT,),
        )
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO llmbase.audit_log (tenant_id, actor, action, object_type)"
                " VALUES (%s, 'me', 'x.y', 'x')",
                (other,),
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # cannot pretend to be a user
            conn.execute(
                "INSERT INTO llmbase.audit_log (tenant_id, actor, actor_user_id, action, object_type)"
                " VALUES (%s, 'me', %s, 'x.y', 'x')",
                (DEFAULT_TENANT, uuid.uuid4()),
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT llmbase.audit_event('x.y', 'x', NULL, NULL, NULL, '{}', %s)", (other,))
    assert [e.action for e in client.audit.list(action="x.y")] == ["x.y"]
    assert list(client.tenant("other").audit.list(action="x.y")) == []


def test_tenants_and_users_see_only_their_entries(client: llmbase.LLMBase) -> None:
    client.admin().tenants.create("globex")
    globex = client.tenant("globex")
    globex.users.create("gina")
    client.users.create("dave")
    assert {e.object_type for e in globex.audit.list()} == {"tenant", "user"}
    assert all(e.tenant_id != DEFAULT_TENANT for e in globex.audit.list())
    assert all(e.tenant_id == DEFAULT_TENANT for e in client.audit.list())
    # A user scope sees the entries of its own actions only.
    dave = client.user("dave")
    dave.audit.record("report.export", "report", "r1")
    mine = list(dave.audit.list())
    assert [e.action for e in mine] == ["report.export"]
    assert mine[0].actor == f"user:{dave.scope().user_id}" and mine[0].actor_user_id == dave.scope().user_id
    # The operator sees everything, including operator-level entries.
    client.admin().audit.record("maintenance.run", "database", None)
    everything = list(client.admin().audit.list(limit=1000))
    assert {e.tenant_id for e in everything} >= {DEFAULT_TENANT, globex.scope().tenant_id, None}


def test_record_validates_its_input_and_stores_nothing_on_error(client: llmbase.LLMBase) -> None:
    ident = client.audit.record(
        "report.export", "report", "monthly", after={"rows": 3}, details={"format": "csv"}
    )
    (entry,) = client.audit.list(action="report.export")
    assert entry.id == ident and entry.after == {"rows": 3} and entry.details == {"format": "csv"}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"action": "Export"}, "action"),
        ({"action": "report export"}, "action"),
        ({"action": ""}, "action"),
        ({"object_type": ""}, "object_type"),
        ({"object_type": "a\x00b"}, "object_type"),
        ({"object_id": "x" * 501}, "object_id"),
        ({"details": ["not", "an", "object"]}, "details"),
    ]
    for override, field in bad:
        args: dict[str, Any] = {"action": "report.export", "object_type": "report", **override}
        with pytest.raises(ValidationError) as err:
            client.audit.record(**args)
        assert err.value.field == field, override
    with pytest.raises(PayloadTooLarge):
        client.audit.record("report.export", "report", details={"blob": "x" * 300_000})
    assert [e.id for e in client.audit.list(action="report.*")] == [ident]


def test_queries_by_actor_action_object_time_and_pages(client: llmbase.LLMBase, db_url: str) -> None:
    named = llmbase.connect(db_url, migrate=False, actor="ops:erin")
    try:
        for i in range(5):
            named.users.create(f"u{i}")
    finally:
        named.close()
    client.users.create("other")
    by_erin = list(client.audit.list(actor="ops:erin"))
    assert len(by_erin) == 5 and all(e.action == "user.create" for e in by_erin)
    assert len(list(client.audit.list(action="user.*"))) == 6
    one = by_erin[2]
    assert [e.id for e in client.audit.list(object_type="user", object_id=one.object_id or "")] == [one.id]
    assert list(client.audit.list(since=datetime.now(UTC) + timedelta(minutes=1))) == []
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = client.audit.list(limit=2, cursor=cursor)
        seen += [e.id for e in page]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [e.id for e in client.audit.list()]
    with pytest.raises(ValidationError):
        client.audit.list(cursor="garbage!")
    with pytest.raises(ValidationError):
        client.audit.list(limit=0)


def test_erasure_functions_remove_a_tenant_and_redact_a_user(client: llmbase.LLMBase, db_url: str) -> None:
    client.admin().tenants.create("gone")
    gone = client.tenant("gone")
    gone.users.create("x")
    user = client.users.create("frank", email="frank@example.com")
    client.users.update(user.id, display_name="Frank")
    tid = gone.scope().tenant_id
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT llmbase.erase_audit_tenant(%s)", (tid,)).fetchone() == (2,)
        assert conn.execute(
            "SELECT llmbase.erase_audit_user(%s, %s)", (DEFAULT_TENANT, user.id)
        ).fetchone() == (2,)
        left = conn.execute("SELECT count(*) FROM llmbase.audit_log WHERE tenant_id = %s", (tid,)).fetchone()
        assert left == (0,)
        text = conn.execute("SELECT string_agg(a::text, ' ') FROM llmbase.audit_log a").fetchone()
        assert text is not None and "frank" not in text[0] and str(user.id) not in text[0]


async def test_async_audit(aclient: llmbase.AsyncLLMBase) -> None:
    await aclient.users.create("async-user")
    ident = await aclient.audit.record("job.run", "job", "nightly")
    page = await aclient.audit.list()
    assert [e.action for e in page][:2] == ["job.run", "user.create"]
    assert page.items[0].id == ident


def test_as_actor_names_who_acts(client: llmbase.LLMBase) -> None:
    key_client = client.as_actor("api_key:123")
    key_client.users.create("via-key")
    key_client.user("via-key").audit.record("report.export", "report", "r")
    (entry,) = client.audit.list(action="user.create")
    assert entry.actor == "api_key:123"
    assert [e.actor for e in client.audit.list(action="report.export")] == ["api_key:123"]
