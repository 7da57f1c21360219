"""`llmbase up`: the main job: database ready, schema at head, running until Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated, Any

import typer

from .. import migrate as m
from ..db import Database
from ._common import DatabaseUrlOpt, DataDirOpt, console, database, fail, redact_url


def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Load demo data on first run (empty database).")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Prepare, print the status and exit instead of waiting.")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Interface the HTTP API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the HTTP API and dashboard.")] = 8000,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the HTTP API and dashboard.")
    ] = True,
    local_admin: Annotated[
        bool | None,
        typer.Option(
            "--local-admin/--no-local-admin",
            help="Requests from this machine without an API key act as the operator "
            "(default: on when --host is a loopback address).",
            show_default=False,
        ),
    ] = None,
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
        server = None
        if serve:
            server = _start_server(db, host, port, local_admin)
            console.print(f"api      http://{host}:{port}/v1  (OpenAPI: /v1/openapi.json, docs: /docs)")
            console.print(f"dashboard http://{host}:{port}/")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print("Press Ctrl-C to stop.")
        while not stop.wait(1.0):
            if server is not None and not server.started and server.should_exit:
                break
        console.print("stopping")
        if server is not None:
            server.should_exit = True


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _start_server(db: Database, host: str, port: int, local_admin: bool | None) -> Any:
    """uvicorn serving the HTTP API in a thread of this process (the database stays ours)."""
    import uvicorn

    from ..client import LLMBase
    from ..client import _Core as Core
    from ..db import DEFAULT_TENANT
    from ..server import create_app

    client = LLMBase(Core(db, DEFAULT_TENANT, None, root=True))
    app = create_app(client, local_admin=host in _LOOPBACK if local_admin is None else local_admin)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="llmbase-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        fail(f"the HTTP API could not listen on {host}:{port}")
    return server
