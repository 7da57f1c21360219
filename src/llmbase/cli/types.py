"""`llmbase types`: TypeScript or Python types generated from the live schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..typegen import Lang, generate
from ._common import DatabaseUrlOpt, DataDirOpt, console, database

LangOpt = Annotated[
    Lang, typer.Option("--lang", help="typescript: a supabase-js Database type; python: TypedDicts.")
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of standard output.", dir_okay=False),
]


def types(
    lang: LangOpt = Lang.typescript,
    output: OutputOpt = None,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Generate types for the llmbase schema (like Supabase's database.types.ts)."""
    with database(database_url, data_dir) as db:
        text = generate(db.url, lang)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output} ({lang.value})")
