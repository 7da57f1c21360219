"""`llmbase up`: the main job: database ready, schema at head, running until Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated

import typer

from .. import migrate as m
from ._common import DatabaseUrlOpt, DataDirOpt, console, database, redact_url


def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Load demo data on first run (empty database).")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Prepare, print the status and exit instead of waiting.")
    ] = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Start the database (embedded by default), migrate to head, optionally seed, and keep running."""
    with database(database_url, data_dir) as db:
        t0 = time.perf_counter()
        url = db.url
        started = time.perf_counter() - t0
        before = m.status(url)
        t1 = time.perf_counter()
        if not before.up_to_date:
            m.upgrade(url)
        migrated = time.perf_counter() - t1
        seeded = ""
        if demo:
            from ..seed import seed_demo

            result = seed_demo(url, only_if_empty=True)
            seeded = result.summary()
        kind = "embedded" if db.embedded else "external"
        console.print(f"[bold green]llmbase is up[/bold green] ({kind} PostgreSQL, ready in {started:.2f}s)")
        console.print(
            f"schema   {m.head()}"
            + (
                f" (migrated from {before.current or 'empty'} in {migrated:.2f}s)"
                if not before.up_to_date
                else " (up to date)"
            )
        )
        if seeded:
            console.print(f"demo     {seeded}")
        console.print(f"url      {redact_url(url)}")
        console.print(
            "python   import llmbase; db = llmbase.connect()"
            + ("" if db.embedded else "  # with LLMBASE_DATABASE_URL set")
        )
        if once:
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print("Press Ctrl-C to stop.")
        while not stop.wait(1.0):
            pass
        console.print("stopping")
