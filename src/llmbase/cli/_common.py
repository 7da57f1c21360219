"""Options shared by every command, defined once, and the one way commands open llmbase."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..config import Settings
from ..db import Database
from ..errors import LLMBaseError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # error lines stay whole for grep and logs

DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="LLMBASE_DATABASE_URL",
        help="PostgreSQL URL (>= 15 with pgvector). Unset: the embedded server.",
        show_default=False,
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="LLMBASE_DATA_DIR",
        help="Data directory of the embedded server (default: the platform's user data dir).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _cli_actor() -> str:
    """The audit log's actor for commands: LLMBASE_ACTOR, else cli:<login name>."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def settings(database_url: str | None, data_dir: Path | None) -> Settings:
    s = Settings.from_env(database_url=database_url, data_dir=data_dir)
    if s.actor is None:
        from dataclasses import replace

        s = replace(s, actor=_cli_actor())
    return s


@contextmanager
def database(database_url: str | None, data_dir: Path | None) -> Iterator[Database]:
    """A Database for one command; errors become a clear message and exit code 1."""
    db = Database(settings(database_url, data_dir))
    try:
        yield db
    except LLMBaseError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        db.close()


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _default(o: Any) -> Any:
    if is_dataclass(o) and not isinstance(o, type):
        return asdict(o)
    if hasattr(o, "model_dump"):
        return o.model_dump()
    return str(o)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=_default, indent=2, ensure_ascii=False) + "\n")


def redact_url(url: str) -> str:
    """A URL with its password hidden, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
