"""Soft archive of conversations: `is_archived = true` for conversations with no activity
since a cutoff (no message, no change: max(updated_at, last_message_at) < cutoff).

Nothing is moved or deleted: archived conversations leave the default listings
(`conversations.list(archived=False)`) and stay readable; `unarchive_conversations(run)`
undoes one run exactly. Every conversation a run archives gets `archived_at` = the run's
timestamp (the run id). The work goes in batches of `batch_size` (one transaction each,
with the audit entry of each tenant touched: `conversations.archive`), so a huge backlog
never holds long locks and an interrupted run continues where it stopped next time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from ..errors import ValidationError
from ._common import Progress, Target, admin, connect, parse_cutoff, resolve_tenant

__all__ = ["ConversationArchive", "archive_conversations", "unarchive_conversations"]


@dataclass(frozen=True)
class ConversationArchive:
    action: str  # 'archive' or 'unarchive'
    run: datetime  # the run's timestamp: archived_at of what it archived
    cutoff: datetime | None
    dry_run: bool
    count: int = 0
    by_tenant: dict[UUID, int] = field(default_factory=dict)


_COUNT = (
    "SELECT c.tenant_id, count(*) FROM llmbase.conversations c WHERE NOT c.is_archived"
    " AND greatest(c.updated_at, c.last_message_at) < %(cutoff)s"
    " AND (%(tenant)s::uuid IS NULL OR c.tenant_id = %(tenant)s) GROUP BY 1"
)

_ARCHIVE_BATCH = (
    "WITH k AS (SELECT c.tenant_id, c.id FROM llmbase.conversations c"
    "  WHERE NOT c.is_archived AND greatest(c.updated_at, c.last_message_at) < %(cutoff)s"
    "  AND (%(tenant)s::uuid IS NULL OR c.tenant_id = %(tenant)s)"
    "  ORDER BY c.tenant_id, c.id LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
    " UPDATE llmbase.conversations c SET is_archived = true, archived_at = %(run)s FROM k"
    " WHERE c.tenant_id = k.tenant_id AND c.id = k.id RETURNING c.tenant_id"
)

_UNARCHIVE_BATCH = (
    "WITH k AS (SELECT c.tenant_id, c.id FROM llmbase.conversations c"
    "  WHERE c.is_archived AND c.archived_at = %(run)s AND (%(tenant)s::uuid IS NULL OR c.tenant_id = %(tenant)s)"
    "  ORDER BY c.tenant_id, c.id LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
    " UPDATE llmbase.conversations c SET is_archived = false FROM k"
    " WHERE c.tenant_id = k.tenant_id AND c.id = k.id RETURNING c.tenant_id"
)


def _batch_size(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > 1_000_000:
        raise ValidationError("must be an integer 1..1000000", field="batch_size")
    return n


def _run_time(run: Any) -> datetime:
    if isinstance(run, datetime):
        return run if run.tzinfo else run.replace(tzinfo=UTC)
    if isinstance(run, str) and "\x00" not in run:
        try:
            return _run_time(datetime.fromisoformat(run.strip().replace("Z", "+00:00")))
        except ValueError:
            pass
    raise ValidationError("expected the run's timestamp (as printed by the archive run)", field="run")


def _batches(
    conn: psycopg.Connection[Any],
    query: str,
    params: dict[str, Any],
    action: str,
    details: dict[str, Any],
    total: int,
    progress: Progress | None,
) -> dict[UUID, int]:
    done: dict[UUID, int] = {}
    count = 0
    while True:
        if progress:
            progress(count, total, action)
        with conn.transaction():
            admin(conn)
            rows = conn.execute(query, params).fetchall()
            batch: dict[UUID, int] = {}
            for (tid,) in rows:
                batch[tid] = batch.get(tid, 0) + 1
            for tid, n in batch.items():
                conn.execute(
                    "SELECT llmbase.audit_event(%s, 'conversations', NULL, NULL, NULL, %s::jsonb, %s)",
                    (f"conversations.{action}", psycopg.types.json.Jsonb({**details, "count": n}), tid),
                )
        for tid, n in batch.items():
            done[tid] = done.get(tid, 0) + n
        count += len(rows)
        if len(rows) < params["n"]:
            break
    if progress:
        progress(count, max(total, count), "done")
    return done


def archive_conversations(
    target: Target,
    older_than: Any,
    *,
    tenant: UUID | str | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ConversationArchive:
    """Archive every conversation (of `tenant`, or of all tenants) idle since the cutoff
    ('6months', '90d', a date); returns the count per tenant and the run's timestamp."""
    cutoff = parse_cutoff(older_than)
    n = _batch_size(batch_size)
    with connect(target) as conn:
        with conn.transaction():
            admin(conn)
            tid = resolve_tenant(conn, tenant) if tenant is not None else None
            run_row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert run_row is not None
            run: datetime = run_row[0]
            params = {"cutoff": cutoff, "tenant": tid, "n": n, "run": run}
            plan = {r[0]: int(r[1]) for r in conn.execute(_COUNT, params).fetchall()}
        total = sum(plan.values())
        if dry_run or not total:
            return ConversationArchive("archive", run, cutoff, dry_run, total, plan)
        details = {"run": run.isoformat(), "cutoff": cutoff.isoformat()}
        done = _batches(conn, _ARCHIVE_BATCH, params, "archive", details, total, progress)
    return ConversationArchive("archive", run, cutoff, False, sum(done.values()), done)


def unarchive_conversations(
    target: Target,
    run: datetime | str,
    *,
    tenant: UUID | str | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ConversationArchive:
    """Undo one archive run: the conversations it archived (and that are still archived
    from it) become active again."""
    at = _run_time(run)
    n = _batch_size(batch_size)
    with connect(target) as conn:
        with conn.transaction():
            admin(conn)
            tid = resolve_tenant(conn, tenant) if tenant is not None else None
            params = {"run": at, "tenant": tid, "n": n}
            plan = {
                r[0]: int(r[1])
                for r in conn.execute(
                    "SELECT tenant_id, count(*) FROM llmbase.conversations WHERE is_archived"
                    " AND archived_at = %(run)s AND (%(tenant)s::uuid IS NULL OR tenant_id = %(tenant)s)"
                    " GROUP BY 1",
                    params,
                ).fetchall()
            }
        total = sum(plan.values())
        if dry_run or not total:
            return ConversationArchive("unarchive", at, None, dry_run, total, plan)
        done = _batches(conn, _UNARCHIVE_BATCH, params, "unarchive", {"run": at.isoformat()}, total, progress)
    return ConversationArchive("unarchive", at, None, False, sum(done.values()), done)
