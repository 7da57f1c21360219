"""`llmbase report <name>`: the SDK's reports as Rich tables, JSON or CSV.

Without --tenant a report spans every tenant (operator scope); --user takes an id or an
external id; --since/--until take ISO dates or relative forms (7d, 24h)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from ..client import LLMBase
from ..client import _Core as Core
from ..db import DEFAULT_TENANT, Database
from ..reports import UserCost, UserUsage
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, print_json

app = typer.Typer(
    help="Analytics from the maintained rollups: cost, errors, latency, usage over time, runs.",
    no_args_is_help=True,
)

SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Start (inclusive): ISO date/datetime (UTC) or relative: 7d, 24h, 30m."),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", help="End (exclusive): ISO date/datetime or relative (7d = 7 days ago)."),
]
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Tenant slug or id (default: every tenant).")
]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="User id or external id.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Only calls to this model.")]
TypeOpt = Annotated[
    str | None, typer.Option("--type", help="Only this request type (chat, embedding, transcription, ...).")
]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]

# Short table headers (JSON and CSV keep the field names).
_HEADERS = {
    "external_id": "user",
    "tenant_id": "tenant",
    "request_type": "type",
    "tokens_total": "tokens",
    "tokens_prompt": "prompt tok",
    "tokens_completion": "compl. tok",
    "cost_usd": "cost $",
    "cost_unknown": "no price",
    "error_rate_pct": "error %",
    "active_users": "users",
    "mean_latency_ms": "mean ms",
    "mean_ms": "mean",
    "p50_ms": "p50",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "max_ms": "max",
    "avg_tokens": "avg tok",
    "latency_ms": "ms",
    "ttft_ms": "ttft ms",
    "created_at": "at",
    "avg_api_ms": "avg api",
    "min_api_ms": "min api",
    "max_api_ms": "max api",
    "median_api_ms": "median api",
    "avg_tool_ms": "avg tool",
    "avg_total_ms": "avg total",
    "total_iterations": "iterations",
    "total_time_ms": "total ms",
    "avg_ms_per_iteration": "ms/iter",
    "completed_at": "completed",
}


def _client(db: Database, tenant: str | None) -> LLMBase:
    """The tenant's client, or the operator's (every tenant) without --tenant."""
    db.ensure_schema()
    root = LLMBase(Core(db, DEFAULT_TENANT, None, root=True))
    return root.tenant(tenant) if tenant else root.admin()


def _cell(value: Any, when: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.4f}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(when)
    return str(value)


def _csv(rows: Sequence[Any]) -> None:
    if not rows:
        return
    names = [f.name for f in fields(rows[0])]
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(names)
    for r in rows:
        out.writerow(["" if (v := getattr(r, n)) is None else v for n in names])


def _table(rows: Sequence[Any], columns: Sequence[str], title: str, when: str) -> Table:
    table = Table(*(_HEADERS.get(c, c) for c in columns), title=title)
    for r in rows:
        table.add_row(*(_cell(getattr(r, c), when) for c in columns))
    return table


def _emit(
    rows: Sequence[Any],
    columns: Sequence[str],
    title: str,
    as_json: bool,
    as_csv: bool,
    when: str | None = None,
) -> None:
    if as_json:
        print_json(list(rows))
    elif as_csv:
        _csv(rows)
    elif not rows:
        console.print(f"{title}: nothing in range")
    else:
        console.print(_table(rows, columns, f"{title} (UTC)" if when else title, when or "%Y-%m-%d %H:%M"))


def _run(
    database_url: str | None,
    data_dir: Any,
    tenant: str | None,
    call: Callable[[LLMBase], Any],
) -> Any:
    with database(database_url, data_dir) as db:
        return call(_client(db, tenant))


@app.command("cost-by-user")
def cost_by_user(
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    model: ModelOpt = None,
    request_type: TypeOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many users.")] = 100,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Requests, tokens and cost per user, most expensive first."""

    def call(c: LLMBase) -> tuple[list[UserCost], dict[UUID, str]]:
        rows = c.reports.cost_by_user(
            since=since, until=until, user=user, model=model, request_type=request_type, limit=limit
        )
        slugs = {} if tenant else {t.id: t.slug for t in c.tenants.list(limit=1000)}
        return rows, slugs

    rows, slugs = _run(database_url, data_dir, tenant, call)
    if as_json or as_csv or not rows:
        _emit(rows, [], "cost by user", as_json, as_csv)
        return
    table = Table(
        *(["tenant"] if not tenant else []),
        "user",
        "requests",
        "errors",
        "tokens",
        "cost $",
        "no price",
        title="cost by user",
    )
    for c in rows:
        who = c.external_id or (str(c.user_id) if c.user_id else "(no user)")
        cells = [_cell(v) for v in (c.requests, c.errors, c.tokens_total, c.cost_usd, c.cost_unknown)]
        table.add_row(*([slugs.get(c.tenant_id, str(c.tenant_id))] if not tenant else []), who, *cells)
    console.print(table)


@app.command("errors")
def error_rate(
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    model: ModelOpt = None,
    request_type: TypeOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Error rate by model and request type, worst first."""
    rows = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.error_rate(
            since=since, until=until, user=user, model=model, request_type=request_type
        ),
    )
    cols = ["model", "request_type", "requests", "errors", "error_rate_pct"]
    _emit(rows, cols, "error rate", as_json, as_csv)


@app.command("latency")
def latency(
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    model: ModelOpt = None,
    request_type: TypeOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Latency by request type and model: mean, p50/p95/p99 (within 5%), max (ms)."""
    rows = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.latency(
            since=since, until=until, user=user, model=model, request_type=request_type
        ),
    )
    cols = [
        "request_type",
        "model",
        "requests",
        "mean_ms",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "avg_tokens",
    ]
    _emit(rows, cols, "latency (ms)", as_json, as_csv)


_PERIOD_COLS = [
    "start",
    "requests",
    "errors",
    "tokens_total",
    "cost_usd",
    "active_users",
    "mean_latency_ms",
]


def _period_command(name: str, doc: str, when: str, default_since: str | None = None) -> None:
    def command(
        since: SinceOpt = None,
        until: UntilOpt = None,
        tenant: TenantOpt = None,
        user: UserOpt = None,
        model: ModelOpt = None,
        request_type: TypeOpt = None,
        as_json: JsonOpt = False,
        as_csv: CsvOpt = False,
        database_url: DatabaseUrlOpt = None,
        data_dir: DataDirOpt = None,
    ) -> None:
        rows = _run(
            database_url,
            data_dir,
            tenant,
            lambda c: getattr(c.reports, name)(
                since=since or default_since, until=until, user=user, model=model, request_type=request_type
            ),
        )
        _emit(rows, _PERIOD_COLS, f"{name} usage", as_json, as_csv, when)

    command.__doc__ = doc
    app.command(name)(command)


_period_command("daily", "Usage and cost per UTC day, newest first.", "%Y-%m-%d")
_period_command(
    "hourly",
    "Usage, cost and mean latency per hour, newest first (default: the last 24h).",
    "%Y-%m-%d %H:00",
    "24h",
)
_period_command("monthly", "Usage and cost per calendar month (UTC), newest first.", "%Y-%m")


@app.command("today")
def today(
    tenant: TenantOpt = None,
    user: UserOpt = None,
    model: ModelOpt = None,
    request_type: TypeOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Usage of the current UTC day so far."""
    row = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.today(user=user, model=model, request_type=request_type),
    )
    _emit([row], _PERIOD_COLS, "today", as_json, as_csv, "%Y-%m-%d")


@app.command("user-usage")
def user_usage(
    user: Annotated[str, typer.Option("--user", "-u", help="User id or external id (required).")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    model: ModelOpt = None,
    request_type: TypeOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """One user's totals, by request type and by model (get_usage_stats)."""
    stats: UserUsage = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.user_usage(
            user, since=since, until=until, model=model, request_type=request_type
        ),
    )
    if as_json:
        print_json(stats)
        return
    cols = ["key", "requests", "errors", "tokens_total", "cost_usd", "mean_latency_ms"]
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["group", *cols])
        out.writerow(
            [
                "total",
                "",
                stats.requests,
                stats.errors,
                stats.tokens_total,
                stats.cost_usd,
                stats.mean_latency_ms or "",
            ]
        )
        for group, items in (("type", stats.by_type), ("model", stats.by_model)):
            for b in items:
                out.writerow([group, *("" if (v := asdict(b)[c]) is None else v for c in cols)])
        return
    who = stats.external_id or str(stats.user_id)
    totals = {k: v for k, v in asdict(stats).items() if k not in ("by_type", "by_model")}
    summary = Table("figure", "value", title=f"usage of {who}")
    for k, v in totals.items():
        summary.add_row(k, _cell(v))
    console.print(summary)
    console.print(_table(stats.by_type, cols, "by type", ""))
    console.print(_table(stats.by_model, cols, "by model", ""))


@app.command("slowest")
def slowest(
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    model: ModelOpt = None,
    request_type: TypeOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="How many calls.")] = 10,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The slowest calls in a time range (from the request log itself)."""
    rows = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.slowest(
            since=since, until=until, user=user, model=model, request_type=request_type, limit=limit
        ),
    )
    cols = ["created_at", "latency_ms", "ttft_ms", "request_type", "model", "status", "tokens_total", "id"]
    _emit(rows, cols, "slowest calls", as_json, as_csv, "%Y-%m-%d %H:%M:%S")


RunNameOpt = Annotated[str | None, typer.Option("--run-name", help="Only runs with this name.")]


@app.command("iterations")
def iterations(
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    run_name: RunNameOpt = None,
    min_samples: Annotated[
        int, typer.Option("--min-samples", help="Hide iteration numbers with fewer samples (seed 004: 3).")
    ] = 1,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Agent-run statistics per iteration number, with the median API time."""
    rows = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.iterations(
            since=since, until=until, user=user, run_name=run_name, min_samples=min_samples
        ),
    )
    cols = [
        "iteration",
        "samples",
        "avg_api_ms",
        "min_api_ms",
        "max_api_ms",
        "median_api_ms",
        "avg_tool_ms",
        "avg_total_ms",
    ]
    _emit(rows, cols, "iterations", as_json, as_csv)


@app.command("iteration-trends")
def iteration_trends(
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    run_name: RunNameOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Iterations per hour with mean API, tool and total time (default: the last 24h)."""
    rows = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.iteration_trends(since=since or "24h", until=until, user=user, run_name=run_name),
    )
    cols = ["hour", "iterations", "avg_api_ms", "avg_tool_ms", "avg_total_ms"]
    _emit(rows, cols, "iteration trends", as_json, as_csv, "%Y-%m-%d %H:00")


@app.command("completions")
def completions(
    since: SinceOpt = None,
    until: UntilOpt = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="How many conversations.")] = 10,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Completed conversations, latest first: iterations, total time, time per iteration."""
    rows = _run(
        database_url,
        data_dir,
        tenant,
        lambda c: c.reports.completions(since=since, until=until, user=user, limit=limit),
    )
    cols = [
        "completed_at",
        "title",
        "total_iterations",
        "total_time_ms",
        "avg_ms_per_iteration",
        "conversation_id",
    ]
    _emit(rows, cols, "completed conversations", as_json, as_csv, "%Y-%m-%d %H:%M")
