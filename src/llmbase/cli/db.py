"""`llmbase db`: the database itself: URL, psql, status, start and stop of the embedded server."""

from __future__ import annotations

import os
import shutil

import typer

from ..embedded import EmbeddedServer
from ._common import DatabaseUrlOpt, DataDirOpt, console, database, fail, redact_url, settings

app = typer.Typer(help="The database: URL, psql, status, stop.", no_args_is_help=True)


@app.command("url")
def url(database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print the connection URL (starts the embedded server if needed)."""
    with database(database_url, data_dir) as db:
        typer.echo(db.url)


@app.command("psql")
def psql(database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None) -> None:
    """Open psql on the database (the embedded server's own psql when no URL is set)."""
    with database(database_url, data_dir) as db:
        target = db.url
        exe = str(db.embedded.bin_dir / "psql") if db.embedded else shutil.which("psql")
    if not exe:
        fail("psql not found on PATH")
    assert exe is not None
    os.execv(exe, [exe, target])  # noqa: S606 - replaces this process with psql


@app.command("status")
def status(database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None) -> None:
    """Show server version, extensions and schema revision."""
    from .. import migrate as m

    with database(database_url, data_dir) as db:
        import psycopg

        with psycopg.connect(db.url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            vec = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        st = m.status(db.url)
        kind = "embedded" if db.embedded else "external"
        console.print(f"server     PostgreSQL {version[0] if version else '?'} ({kind})")
        console.print(f"pgvector   {vec[0] if vec else 'not installed'}")
        console.print(
            f"schema     {st.current or 'empty'} (head {st.head}){'' if st.up_to_date else '  [yellow]behind[/yellow]'}"
        )
        console.print(f"url        {redact_url(db.url)}")


@app.command("stop")
def stop(data_dir: DataDirOpt = None) -> None:
    """Stop the embedded server now, whoever is using it."""
    cfg = settings(None, data_dir)
    server = EmbeddedServer(cfg.data_dir)
    if not server.is_running():
        console.print("embedded server is not running")
        return
    server.stop()
    console.print(f"stopped the embedded server in {cfg.data_dir}")
