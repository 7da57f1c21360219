"""`llmbase migrate`: schema migrations up, down, status, validate, and the SQL script."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .. import migrate as m
from ._common import DatabaseUrlOpt, DataDirOpt, console, database

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


@app.command("sql")
def sql(
    to: ToOpt = None,
    from_: Annotated[str | None, typer.Option("--from", help="Start after this revision.")] = None,
) -> None:
    """Print the complete up-SQL (for psql or Supabase's SQL editor); touches no database."""
    typer.echo(m.sql_script(to or "head", from_), nl=False)
