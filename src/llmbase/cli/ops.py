"""`llmbase stats`, `llmbase maintain`, `llmbase delete user|tenant`: operations over the SDK's
`llmbase.ops` (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import ops
from ..ops._common import Progress as ProgressFn
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, print_json

delete_app = typer.Typer(
    help="Delete a tenant or a user with every row of theirs, in every table.", no_args_is_help=True
)

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only report what would happen.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:,.1f} {unit}"


@contextmanager
def progress_bar(label: str, quiet: bool) -> Iterator[ProgressFn | None]:
    """A Rich progress bar fed by an operation's progress callback (none with --json)."""
    if quiet:
        yield None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int, where: str) -> None:
        bar.update(task, completed=done, total=total, description=f"{label}: {where}")

    with bar:
        yield update


# -- stats --------------------------------------------------------------------------------------
def stats(
    top: Annotated[int, typer.Option("--top", min=1, help="Show this many largest tables.")] = 20,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Table and index sizes, index usage, dead rows and vacuum times, connections, the
    request log's partitions, embeddings and cache totals."""
    with database(database_url, data_dir) as db:
        db.ensure_schema()
        s = ops.stats(db)
    if as_json:
        print_json(s)
        return
    since = f"  (statistics since {s.stats_reset:%Y-%m-%d %H:%M} UTC)" if s.stats_reset else ""
    console.print(
        f"[bold]{s.database}[/bold]  PostgreSQL {s.server_version}  {_size(s.database_bytes)}{since}"
    )
    t = Table("table", "partitions", "rows (est.)", "data", "indexes", "total", title="Largest tables")
    for x in s.tables[:top]:
        t.add_row(
            f"{x.schema}.{x.name}",
            str(x.partitions) if x.partitions else "",
            f"{x.rows:,}",
            _size(x.table_bytes),
            _size(x.index_bytes),
            _size(x.total_bytes),
        )
    console.print(t)
    unused = s.unused_indexes
    if unused:
        u = Table("table", "index", "method", "size", title="Indexes never scanned (not unique keys)")
        for i in sorted(unused, key=lambda i: -i.bytes):
            u.add_row(i.table, i.name, i.method, _size(i.bytes))
        console.print(u)
    v = Table("table", "live", "dead", "dead %", "changed since analyze", "last vacuum", "last analyze")
    v.title = "Dead rows and vacuum"
    for w in s.vacuum[:top]:
        v.add_row(
            w.table,
            f"{w.live_rows:,}",
            f"{w.dead_rows:,}",
            f"{w.dead_ratio:.0%}",
            f"{w.modified_since_analyze:,}",
            f"{w.last_vacuum:%Y-%m-%d %H:%M}" if w.last_vacuum else "never",
            f"{w.last_analyze:%Y-%m-%d %H:%M}" if w.last_analyze else "never",
        )
    console.print(v)
    if s.connections:
        c = s.connections
        states = ", ".join(f"{k} {n}" for k, n in c.by_state.items())
        oldest = f"{c.oldest_transaction_s:,.1f} s" if c.oldest_transaction_s is not None else "none"
        console.print(
            f"connections: {c.total} to this database ({states}); {c.cluster_total} of "
            f"{c.max_connections} on the server; waiting on locks {c.waiting_on_locks}; idle in "
            f"transaction {c.idle_in_transaction}; oldest open transaction {oldest}"
        )
    if s.request_log:
        r = s.request_log
        span = f"{r.oldest} .. {r.newest}" if r.oldest else "none"
        console.print(
            f"request log: {r.partitions} daily partitions ({span}), {r.rows:,} rows, {_size(r.bytes)};"
            f" archived: {r.archived_partitions} partitions, {_size(r.archived_bytes)}"
        )
    if s.embeddings:
        e = s.embeddings
        console.print(
            f"embeddings: {e.collections} collections, {e.documents:,} documents, {e.chunks:,} chunks,"
            f" {_size(e.chunk_bytes)} (vector indexes {_size(e.vector_index_bytes)})"
        )
    if s.cache:
        console.print(
            f"cache: {s.cache.entries:,} entries ({s.cache.expired:,} expired), {s.cache.hits:,} hits,"
            f" {_size(s.cache.bytes)}"
        )


# -- maintain -------------------------------------------------------------------------------------
def maintain(
    dry_run: DryRunOpt = False,
    days_ahead: Annotated[
        int, typer.Option("--days-ahead", min=0, max=366, help="Request-log partitions to create ahead.")
    ] = 7,
    dead_ratio: Annotated[
        float, typer.Option("--dead-ratio", min=0, max=1, help="VACUUM above this share of dead rows.")
    ] = 0.1,
    analyze_ratio: Annotated[
        float,
        typer.Option("--analyze-ratio", min=0, max=1, help="ANALYZE above this share of changed rows."),
    ] = 0.1,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """VACUUM / ANALYZE where needed, request-log partitions ahead, expired cache entries,
    old rate-limit counters and budget reservations, late records of deleted tenants."""
    th = ops.Thresholds(dead_ratio=dead_ratio, analyze_ratio=analyze_ratio, days_ahead=days_ahead)
    with database(database_url, data_dir) as db:
        db.ensure_schema()
        with progress_bar("maintain", as_json or dry_run) as cb:
            res = ops.maintain(db, dry_run=dry_run, thresholds=th, progress=cb)
    if as_json:
        print_json(res)
        return
    if not res.actions:
        console.print("nothing to do")
        return
    t = Table("task", "target", "why", "result", title="would do" if dry_run else "done")
    for a in res.actions:
        result = ", ".join(f"{k} {v}" for k, v in a.result.items())
        if a.done:
            result = (result + f" ({a.seconds:.2f} s)").strip()
        t.add_row(a.task, a.target, a.reason, result)
    console.print(t)


# -- delete ---------------------------------------------------------------------------------------
def _print_delete(res: ops.DeleteResult, as_json: bool) -> None:
    if as_json:
        print_json(res)
        return
    what = f"{res.kind} {res.id}" + (f" of tenant {res.tenant_id}" if res.kind == "user" else "")
    t = Table("table", "rows", title=("would delete " if res.dry_run else "deleted ") + what)
    for table, n in res.counts.items():
        t.add_row(table, f"{n:,}")
    t.add_row("[bold]total", f"[bold]{res.total:,}")
    console.print(t)
    if res.dropped_partitions:
        console.print(f"chunk partitions dropped: {', '.join(res.dropped_partitions)}")
    if not res.dry_run:
        console.print(f"audit entry {res.audit_id}")


@delete_app.command("tenant")
def delete_tenant(
    tenant: Annotated[str, typer.Argument(help="Tenant id or slug.")],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a tenant and its rows in every table (one transaction; audited)."""
    if not (yes or dry_run):
        typer.confirm(f"Delete tenant {tenant} and ALL of its data? (not recoverable)", abort=True)
    with database(database_url, data_dir) as db:
        db.ensure_schema()
        with progress_bar("delete tenant", as_json) as cb:
            res = ops.delete_tenant(db, tenant, dry_run=dry_run, progress=cb)
    _print_delete(res, as_json)


@delete_app.command("user")
def delete_user(
    user: Annotated[str, typer.Argument(help="User id, or external id with --tenant.")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Tenant id or slug (needed for an external id).")
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a user and every row with their user_id (one transaction; audited)."""
    if not (yes or dry_run):
        typer.confirm(f"Delete user {user} and all of their data? (not recoverable)", abort=True)
    with database(database_url, data_dir) as db:
        db.ensure_schema()
        with progress_bar("delete user", as_json) as cb:
            res = ops.delete_user(db, user, tenant=tenant, dry_run=dry_run, progress=cb)
    _print_delete(res, as_json)
