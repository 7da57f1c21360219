"""`llmbase cache clean|stats`: expired entries out, hit rate and cost saved in."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..client import LLMBase
from ..client import _Core as Core
from ..db import DEFAULT_TENANT, Database
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, print_json

app = typer.Typer(
    help="The response cache: clean expired entries, show hit rate and savings.", no_args_is_help=True
)

TenantOpt = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Tenant slug or id (default: every tenant).")
]


def _client(db: Database, tenant: str | None) -> LLMBase:
    db.ensure_schema()
    root = LLMBase(Core(db, DEFAULT_TENANT, None, root=True))
    return root.tenant(tenant) if tenant is not None else root.admin()


@app.command("clean")
def clean(
    tenant: TenantOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Delete at most this many entries.")] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete expired cache entries (SQL: llmbase.clean_expired_cache())."""
    with database(database_url, data_dir) as db:
        n = _client(db, tenant).cache.clean(limit)
        if as_json:
            print_json({"deleted": n})
        else:
            console.print(f"deleted {n} expired cache entr{'y' if n == 1 else 'ies'}")


@app.command("stats")
def stats(
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Entries, hits, hit rate and cost saved (one tenant, or all)."""
    with database(database_url, data_dir) as db:
        st = _client(db, tenant).cache.stats()
        if as_json:
            print_json(st)
            return
        table = Table(title="response cache" + (f" ({tenant})" if tenant else " (all tenants)"))
        table.add_column("metric")
        table.add_column("value", justify="right")
        rate = "-" if st.hit_rate is None else f"{st.hit_rate:.1%}"
        for name, value in (
            ("entries", f"{st.entries:,}"),
            ("expired (not yet cleaned)", f"{st.expired:,}"),
            ("hits", f"{st.hits:,}"),
            ("stores (misses)", f"{st.stores:,}"),
            ("hit rate", rate),
            ("cost saved", f"${st.cost_saved_usd:,.6f}"),
            ("stored responses", f"{st.bytes:,} bytes"),
            ("last hit", str(st.last_hit_at or "-")),
        ):
            table.add_row(name, value)
        console.print(table)
