"""The `llmbase` command: thin shells over the SDK, one module per command group."""

from __future__ import annotations

import typer

from . import admin, archive, db, docs, migrate, report, seed, types, up
from . import cache as cache_cli
from . import limits as limits_cli
from . import ops as ops_cli

app = typer.Typer(
    name="llmbase",
    help="llmbase: the PostgreSQL backend for LLM applications (embedded PostgreSQL by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("up")(up.up)
app.command("seed")(seed.seed)
app.add_typer(db.app, name="db")
app.add_typer(migrate.app, name="migrate")
app.command("types")(types.types)
admin.register(app)
app.add_typer(report.app, name="report")
app.add_typer(archive.app, name="archive")
app.add_typer(docs.app, name="docs")
app.command("stats")(ops_cli.stats)
app.command("maintain")(ops_cli.maintain)
app.add_typer(ops_cli.delete_app, name="delete")
app.add_typer(limits_cli.app, name="limits")
app.add_typer(cache_cli.app, name="cache")


def main() -> None:
    app()
