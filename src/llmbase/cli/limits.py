"""`llmbase limits set|list|delete|check|budget`: rate limits and budgets of a tenant."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table

from ..client import LLMBase
from ..client import _Core as Core
from ..db import DEFAULT_TENANT, Database
from ..errors import NotFound
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, print_json

app = typer.Typer(help="Rate limits and monthly cost budgets of a tenant.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug or id.")]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="User id or external id.")]


def _tenant(db: Database, tenant: str) -> LLMBase:
    db.ensure_schema()
    return LLMBase(Core(db, DEFAULT_TENANT, None, root=True)).tenant(tenant)


@app.command("set")
def set_(
    limit: Annotated[int, typer.Argument(help="How many requests or tokens per window.")],
    tenant: TenantOpt,
    metric: Annotated[str, typer.Option(help="requests or tokens.")] = "requests",
    window: Annotated[str, typer.Option(help="minute, hour or day.")] = "minute",
    user: UserOpt = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key id.")] = None,
    per_user: Annotated[bool, typer.Option("--per-user", help="Each user of the tenant separately.")] = False,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create or change a rate limit (the tenant's, a user's, an API key's, or per user)."""
    with database(database_url, data_dir) as db:
        lim = _tenant(db, tenant).limits.set(
            limit, metric=metric, window=window, user=user, api_key=api_key, per_user=per_user
        )
        if as_json:
            print_json(lim)
        else:
            console.print(f"limit {lim.id}: {lim.limit} {lim.metric}/{lim.window} for {_who(lim)}")


def _who(x: object) -> str:
    user_id = getattr(x, "user_id", None)
    if user_id is not None:
        return f"user {user_id}"
    key_id = getattr(x, "api_key_id", None)
    if key_id is not None:
        return f"API key {key_id}"
    return "each user" if getattr(x, "per_user", False) else "the tenant"


@app.command("budget")
def budget(
    cap_usd: Annotated[str, typer.Argument(help="Monthly cap in USD (UTC calendar month).")],
    tenant: TenantOpt,
    user: UserOpt = None,
    per_user: Annotated[bool, typer.Option("--per-user", help="Each user of the tenant separately.")] = False,
    mode: Annotated[str, typer.Option(help="hard (refuse) or soft (warn).")] = "hard",
    unpriced_call_usd: Annotated[
        str | None, typer.Option(help="What a call of a model without a known price reserves.")
    ] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create or change a monthly cost budget."""
    with database(database_url, data_dir) as db:
        b = _tenant(db, tenant).budgets.set(
            cap_usd, user=user, per_user=per_user, mode=mode, unpriced_call_usd=unpriced_call_usd
        )
        if as_json:
            print_json(b)
        else:
            console.print(f"budget {b.id}: {b.cap_usd.normalize()} USD/month ({b.mode}) for {_who(b)}")


@app.command("list")
def list_(
    tenant: TenantOpt,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the tenant's rate limits and budgets (with this month's spend)."""
    with database(database_url, data_dir) as db:
        client = _tenant(db, tenant)
        limits = client.limits.list()
        budgets = client.budgets.list()
        usage = client.budgets.usage()
        if as_json:
            print_json({"limits": limits, "budgets": budgets, "usage": usage})
            return
        table = Table("id", "subject", "limit", "per")
        for lim in limits:
            table.add_row(str(lim.id), _who(lim), f"{lim.limit} {lim.metric}", lim.window)
        console.print(table)
        spent: dict[object, Decimal] = {}
        for u in usage:
            spent[u.budget_id] = spent.get(u.budget_id, Decimal(0)) + u.spent_usd
        btable = Table("id", "subject", "cap USD/month", "mode", "spent this month")
        for b in budgets:
            btable.add_row(
                str(b.id),
                _who(b),
                str(b.cap_usd.normalize()),
                b.mode,
                str(spent.get(b.id, Decimal(0)).normalize()),
            )
        console.print(btable)


@app.command("delete")
def delete(
    ident: Annotated[str, typer.Argument(help="Id of a rate limit or a budget.")],
    tenant: TenantOpt,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a rate limit (and its counters) or a budget (and its spend records)."""
    with database(database_url, data_dir) as db:
        client = _tenant(db, tenant)
        try:
            client.limits.delete(ident)
            console.print(f"deleted rate limit {ident}")
        except NotFound:
            client.budgets.delete(ident)
            console.print(f"deleted budget {ident}")


@app.command("check")
def check(
    tenant: TenantOpt,
    user: UserOpt = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key id.")] = None,
    requests: Annotated[int, typer.Option(help="Requests of the call.")] = 1,
    tokens: Annotated[int, typer.Option(help="Tokens of the call.")] = 0,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Would a call be admitted now? Counts nothing. Exit code 2 when it would be refused."""
    with database(database_url, data_dir) as db:
        r = _tenant(db, tenant).limits.check(requests=requests, tokens=tokens, api_key=api_key, user=user)
        if as_json:
            print_json(r)
        else:
            table = Table("limit", "subject", "used", "remaining", "resets", "ok")
            for s in r.limits:
                table.add_row(
                    f"{s.limit} {s.name}",
                    s.subject + (" (per user)" if s.per_user else ""),
                    str(s.used),
                    str(s.remaining),
                    f"{s.reset_at:%H:%M:%S} UTC",
                    "yes" if s.allowed else "no",
                )
            console.print(table)
            verdict = "admitted" if r.allowed else f"refused: retry in {r.retry_after:.1f} s"
            console.print(f"{verdict} ({len(r.limits)} limit(s) apply)")
    if not r.allowed:
        raise typer.Exit(2)
