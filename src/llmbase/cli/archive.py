"""`llmbase archive [requests] --older-than 90d`: retention of the request log.

Whole daily partitions older than the cutoff leave the hot table (moved to the schema
llmbase_archive, or dropped with --drop); rollups stay. --drop-bodies-after 30d keeps
every metric but clears request/response bodies of older calls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .. import retention
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, fail, print_json

app = typer.Typer(
    help="Retention of the request log: archive or drop old partitions, drop old bodies.",
    invoke_without_command=True,
)

OlderThanOpt = Annotated[
    str | None,
    typer.Option(
        "--older-than",
        help="Move out whole daily partitions entirely older than this (90d, 12w, or an ISO date).",
    ),
]
DropOpt = Annotated[bool, typer.Option("--drop", help="Drop the old partitions instead of archiving them.")]
BodiesOpt = Annotated[
    str | None,
    typer.Option(
        "--drop-bodies-after",
        help="Clear request/response bodies of calls older than this (30d); metrics stay.",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only list what would happen.")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Do not ask before dropping partitions.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Rows per transaction when dropping bodies.")]


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[retention.Progress | None]:
    """A Rich progress bar fed by retention's progress callback (none with --json)."""
    if quiet:
        yield None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int, where: str) -> None:
        bar.update(task, completed=done, total=total, description=f"{label} {where}")

    with bar:
        yield update


def _run(
    older_than: str | None,
    drop: bool,
    bodies_after: str | None,
    dry_run: bool,
    yes: bool,
    batch_size: int,
    as_json: bool,
    database_url: str | None,
    data_dir: Path | None,
) -> None:
    if older_than is None and bodies_after is None:
        fail("nothing to do: give --older-than and/or --drop-bodies-after")
    if drop and older_than is None:
        fail("--drop needs --older-than")
    if drop and not (yes or dry_run):
        typer.confirm(
            f"Drop every request-log partition older than {older_than}? (not recoverable)", abort=True
        )
    out: dict[str, object] = {}
    with database(database_url, data_dir) as db:
        db.ensure_schema()
        url = db.url
        if older_than is not None:
            plan = retention.archive_requests(url, older_than, drop=drop, dry_run=True)
            if dry_run or not plan.partitions:
                res = plan
            else:
                with _progress("drop" if drop else "archive", as_json) as cb:
                    res = retention.archive_requests(url, plan.cutoff, drop=drop, progress=cb)
            out["partitions"] = res
            if not as_json:
                _print_partitions(res, dry_run)
        if bodies_after is not None:
            plan_b = retention.drop_bodies(url, bodies_after, dry_run=True, batch_size=batch_size)
            if dry_run or not plan_b.rows_with_bodies:
                res_b = plan_b
            else:
                with _progress("drop bodies", as_json) as cb:
                    res_b = retention.drop_bodies(url, plan_b.cutoff, batch_size=batch_size, progress=cb)
            out["bodies"] = res_b
            if not as_json:
                _print_bodies(res_b, dry_run)
    if as_json:
        print_json(out)


def _print_partitions(res: retention.ArchiveResult, dry_run: bool) -> None:
    verb = {"archive": "archived to " + retention.ARCHIVE_SCHEMA, "drop": "dropped"}[res.action]
    if not res.partitions:
        console.print(f"no request-log partition entirely before {res.cutoff:%Y-%m-%d %H:%M} UTC")
        return
    table = Table(
        "partition", "from", "to", "rows (est.)", "size", title=("would be " if dry_run else "") + verb
    )
    for p in res.partitions:
        table.add_row(
            p.name, f"{p.lower:%Y-%m-%d}", f"{p.upper:%Y-%m-%d}", f"{p.rows:,}", f"{p.bytes / 2**20:,.1f} MiB"
        )
    console.print(table)


def _print_bodies(res: retention.BodiesResult, dry_run: bool) -> None:
    total = sum(res.rows_with_bodies.values())
    if dry_run:
        console.print(
            f"would clear bodies of {total:,} calls before {res.cutoff:%Y-%m-%d %H:%M} UTC "
            f"in {len(res.rows_with_bodies)} partitions"
        )
    else:
        console.print(f"cleared bodies of {res.cleared:,} calls before {res.cutoff:%Y-%m-%d %H:%M} UTC")


@app.callback()
def archive(
    ctx: typer.Context,
    older_than: OlderThanOpt = None,
    drop: DropOpt = False,
    drop_bodies_after: BodiesOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    batch_size: BatchOpt = 5000,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Retention of the request log (same as `llmbase archive requests`)."""
    if ctx.invoked_subcommand is not None:
        return
    if older_than is None and drop_bodies_after is None and not (drop or dry_run):
        console.print(ctx.get_help())
        raise typer.Exit(0)
    _run(older_than, drop, drop_bodies_after, dry_run, yes, batch_size, as_json, database_url, data_dir)


@app.command("requests")
def requests(
    older_than: OlderThanOpt = None,
    drop: DropOpt = False,
    drop_bodies_after: BodiesOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    batch_size: BatchOpt = 5000,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Archive (or --drop) request-log partitions older than --older-than; --drop-bodies-after."""
    _run(older_than, drop, drop_bodies_after, dry_run, yes, batch_size, as_json, database_url, data_dir)


@app.command("conversations")
def conversations(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", help="Archive conversations idle since this long (6months, 90d, a date)."
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only this tenant (id or slug); default: all.")
    ] = None,
    undo: Annotated[
        str | None,
        typer.Option("--undo", help="Unarchive what one run archived (the run id it printed)."),
    ] = None,
    dry_run: DryRunOpt = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Conversations per transaction.")
    ] = 1000,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Soft-archive conversations with no activity since --older-than (reversible with --undo)."""
    from .. import ops
    from .ops import progress_bar

    if (older_than is None) == (undo is None):
        fail("give either --older-than or --undo RUN")
    with database(database_url, data_dir) as db:
        db.ensure_schema()
        with progress_bar("unarchive" if undo else "archive", as_json or dry_run) as cb:
            if undo is not None:
                res = ops.unarchive_conversations(
                    db, undo, tenant=tenant, dry_run=dry_run, batch_size=batch_size, progress=cb
                )
            else:
                res = ops.archive_conversations(
                    db, older_than, tenant=tenant, dry_run=dry_run, batch_size=batch_size, progress=cb
                )
    if as_json:
        from dataclasses import asdict

        print_json({**asdict(res), "by_tenant": {str(k): n for k, n in res.by_tenant.items()}})
        return
    verb = ("would " if dry_run else "") + ("unarchive" if undo else "archive")
    if not dry_run:
        verb += "d"
    since = f" idle since {res.cutoff:%Y-%m-%d %H:%M} UTC" if res.cutoff else ""
    console.print(f"{verb} {res.count:,} conversations{since} in {len(res.by_tenant)} tenants")
    if res.count and not dry_run and not undo:
        console.print(f"run id: {res.run.isoformat()}  (undo: llmbase archive conversations --undo RUN)")
