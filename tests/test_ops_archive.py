"""`llmbase archive conversations`: soft archive of idle conversations, undone exactly by
run, audited per tenant."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

import llmbase
from llmbase import ops
from llmbase.errors import NotFound, ValidationError

Conn = psycopg.Connection[Any]


@pytest.fixture
def su(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def backdate(su: Conn, conv: UUID, days: int) -> None:
    """Make a conversation idle for `days` (triggers off: they would stamp now())."""
    with su.transaction():
        su.execute("SET LOCAL session_replication_role = replica")
        su.execute(
            "UPDATE llmbase.conversations SET updated_at = now() - make_interval(days => %s),"
            " created_at = now() - make_interval(days => %s),"
            " last_message_at = CASE WHEN last_message_at IS NULL THEN NULL"
            "   ELSE now() - make_interval(days => %s) END WHERE id = %s",
            (days, days, days, conv),
        )


def archived(su: Conn) -> dict[UUID, tuple[bool, datetime | None]]:
    rows = su.execute("SELECT id, is_archived, archived_at FROM llmbase.conversations").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_archives_idle_conversations_and_undoes_the_run(
    client: llmbase.LLMBase, db_url: str, su: Conn
) -> None:
    acme = client.admin().tenants.create("acme")
    other = client.tenant(acme.id)
    old = [client.conversations.create(title=f"old {i}").id for i in range(3)]
    old_other = other.conversations.create(title="acme old").id
    recent = client.conversations.create(title="recent").id
    chatty = client.conversations.create(title="old but a message today").id
    client.conversations.add_message(chatty, role="user", content="hi")
    manual = client.conversations.create(title="archived by hand").id
    for c in [*old, old_other, chatty, manual]:
        backdate(su, c, 200)
    backdate(su, recent, 20)
    su.execute("UPDATE llmbase.conversations SET last_message_at = now() WHERE id = %s", (chatty,))
    client.conversations.update(manual, archived=True)
    manual_at = archived(su)[manual][1]
    assert manual_at is not None  # the flag change stamps archived_at

    dry = ops.archive_conversations(db_url, "6months", dry_run=True)
    assert dry.dry_run and dry.count == 4
    assert not any(archived(su)[c][0] for c in old)

    res = ops.archive_conversations(db_url, "6months")
    assert res.count == 4
    assert res.by_tenant == {llmbase.db.DEFAULT_TENANT: 3, acme.id: 1}
    state = archived(su)
    for c in [*old, old_other]:
        assert state[c] == (True, res.run)
    assert state[recent] == (False, None) and state[chatty] == (False, None)
    assert state[manual] == (True, manual_at)
    # Archived conversations leave the default listing but stay readable.
    listed = {c.id for c in client.conversations.list()}
    assert not listed & set(old) and recent in listed
    assert client.conversations.get(old[0]).is_archived
    # Audited per tenant, with the run and the count.
    entries = su.execute(
        "SELECT tenant_id, details->>'count', details->>'run' FROM llmbase.audit_log"
        " WHERE action = 'conversations.archive' ORDER BY 2"
    ).fetchall()
    assert sorted((e[0], int(e[1])) for e in entries) == sorted(res.by_tenant.items())
    assert {e[2] for e in entries} == {res.run.isoformat()}
    # A second run finds nothing more.
    assert ops.archive_conversations(db_url, "6months").count == 0

    undo = ops.unarchive_conversations(db_url, res.run.isoformat())
    assert undo.count == 4 and undo.by_tenant == res.by_tenant
    state = archived(su)
    assert all(state[c] == (False, None) for c in [*old, old_other])
    assert state[manual] == (True, manual_at)  # not part of that run
    assert su.execute(
        "SELECT count(*) FROM llmbase.audit_log WHERE action = 'conversations.unarchive'"
    ).fetchone() == (2,)


def test_one_tenant_in_small_batches_with_progress(client: llmbase.LLMBase, db_url: str, su: Conn) -> None:
    acme = client.admin().tenants.create("acme")
    mine = [client.tenant(acme.id).conversations.create(title=str(i)).id for i in range(5)]
    theirs = client.conversations.create(title="default tenant").id
    for c in [*mine, theirs]:
        backdate(su, c, 400)
    seen: list[tuple[int, int, str]] = []
    res = ops.archive_conversations(
        db_url, "1y", tenant="acme", batch_size=2, progress=lambda d, t, w: seen.append((d, t, w))
    )
    assert res.count == 5 and res.by_tenant == {acme.id: 5}
    assert archived(su)[theirs] == (False, None)
    assert seen[0] == (0, 5, "archive") and seen[-1] == (5, 5, "done")
    assert [d for d, _, w in seen if w == "archive"] == [0, 2, 4]
    # Three batches, each with its own audit entry for the tenant.
    assert su.execute(
        "SELECT count(*), sum((details->>'count')::int) FROM llmbase.audit_log"
        " WHERE action = 'conversations.archive' AND tenant_id = %s",
        (acme.id,),
    ).fetchone() == (3, 5)


@pytest.mark.parametrize(
    "bad",
    ["-5d", "0months", "abc", "6 parsecs", "x\x00", "", None, True, 3, math.nan, "2999-01-01", timedelta(0)],
)
def test_bad_cutoffs_are_rejected(client: llmbase.LLMBase, db_url: str, su: Conn, bad: Any) -> None:
    c = client.conversations.create(title="x").id
    backdate(su, c, 1000)
    with pytest.raises(ValidationError) as e:
        ops.archive_conversations(db_url, bad)
    assert e.value.field == "older_than"
    assert archived(su)[c] == (False, None)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10", 10_000_000])
def test_bad_batch_sizes_are_rejected(db_url: str, bad: Any) -> None:
    with pytest.raises(ValidationError) as e:
        ops.archive_conversations(db_url, "6months", batch_size=bad)
    assert e.value.field == "batch_size"


@pytest.mark.parametrize("bad", ["yesterday-ish", "", "x\x00", 5, None])
def test_bad_run_ids_are_rejected(db_url: str, bad: Any) -> None:
    with pytest.raises(ValidationError) as e:
        ops.unarchive_conversations(db_url, bad)
    assert e.value.field == "run"


def test_unknown_tenant_is_not_found(db_url: str) -> None:
    with pytest.raises(NotFound):
        ops.archive_conversations(db_url, "6months", tenant="nobody")
    with pytest.raises(NotFound):
        ops.unarchive_conversations(
            db_url, datetime.now(UTC), tenant=llmbase.db.DEFAULT_TENANT.hex[:-1] + "2"
        )


def test_unarchive_through_the_sdk_clears_archived_at(client: llmbase.LLMBase, su: Conn) -> None:
    c = client.conversations.create(title="x").id
    client.conversations.update(c, archived=True)
    assert archived(su)[c][0] is True and archived(su)[c][1] is not None
    client.conversations.update(c, title="renamed")  # other changes keep the stamp
    assert archived(su)[c][1] is not None
    client.conversations.update(c, archived=False)
    assert archived(su)[c] == (False, None)
