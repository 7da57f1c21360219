"""`llmbase migrate`: schema migrations up, down, status, validate, and the SQL script."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .. import migrate as m
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, print_json

app = typer.Typer(help="Schema migrations: up, down, status, validate, sql.", no_args_is_help=True)

ToOpt = Annotated[
    str | None, typer.Option("--to", help="Target revision (default: head for up, base for down).")
]


@app.command("up")
def up(to: ToOpt = None, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None) -> None:
    """Apply migrations up to head (or --to REV). Safe to run from two deploys at once."""
    with database(database_url, data_dir) as db:
        before = m.status(db.url)
        t0 = time.perf_counter()
        m.upgrade(db.url, to or "head")
        after = m.status(db.url)
        console.print(
            f"migrated {before.current or 'base'} -> {after.current or 'base'} in {time.perf_counter() - t0:.2f}s"
        )


@app.command("down")
def down(
    to: ToOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revert migrations down to base (or --to REV). Dropping tables deletes their data."""
    target = to or "base"
    if not yes:
        typer.confirm(f"Revert the schema to {target}? Data in dropped tables is lost.", abort=True)
    with database(database_url, data_dir) as db:
        before = m.status(db.url)
        m.downgrade(db.url, target)
        after = m.status(db.url)
        console.print(f"migrated {before.current or 'base'} -> {after.current or 'base'}")


@app.command("status")
def status(database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None) -> None:
    """Show the current revision, head, and pending revisions."""
    with database(database_url, data_dir) as db:
        st = m.status(db.url)
        console.print(f"current  {st.current or 'base (empty)'}")
        console.print(f"head     {st.head}")
        console.print(f"pending  {', '.join(st.pending) if st.pending else 'none'}")
        if not st.up_to_date:
            raise typer.Exit(3)


@app.command("validate")
def validate(
    json_: JsonOpt = False, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Check the live schema against the bundled manifest: tables, columns, constraints,
    indexes, functions, triggers, RLS, role security, revision. Exit 1 on any failure."""
    from rich.markup import escape
    from rich.table import Table

    from ..validate import validate as run_validation

    with database(database_url, data_dir) as db:
        report = run_validation(db.url)
    if json_:
        print_json(report.to_dict())
    else:
        table = Table("test_category")
        for column in ("total", "passed", "failed"):
            table.add_column(column, justify="right")
        for row in report.categories():
            style = "red" if row.failed else None
            table.add_row(row.category, str(row.total), str(row.passed), str(row.failed), style=style)
        console.print(table)
        for check in report.failures:
            console.print(f"[red]✗[/red] {escape(f'{check.category}: {check.name}: {check.detail}')}")
        if report.ok:
            console.print("[green]✓ All validation tests passed![/green]")
    if not report.ok:
        raise typer.Exit(1)


@app.command("sql")
def sql(
    to: ToOpt = None,
    from_: Annotated[str | None, typer.Option("--from", help="Start after this revision.")] = None,
) -> None:
    """Print the complete up-SQL (for psql or Supabase's SQL editor); touches no database."""
    typer.echo(m.sql_script(to or "head", from_), nl=False)
