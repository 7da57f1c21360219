"""`llmbase tenants|users|keys|settings`: administration of tenants and their users, keys and settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .._sanitize import clean_json
from ..client import LLMBase
from ..client import _Core as Core
from ..db import DEFAULT_TENANT
from ..stores.keys import SCOPES
from ._common import DatabaseUrlOpt, DataDirOpt, JsonOpt, console, database, fail, print_json

tenants_app = typer.Typer(help="Tenants: create, list, delete.", no_args_is_help=True)
users_app = typer.Typer(help="Users of a tenant: create, list.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
settings_app = typer.Typer(help="Tenant settings: show, set from a JSON file.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug or id.")]


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
    app.add_typer(settings_app, name="settings")


def _client(db: object, tenant: str | None = None) -> LLMBase:
    from ..db import Database

    assert isinstance(db, Database)
    db.ensure_schema()
    base = LLMBase(Core(db, DEFAULT_TENANT, None, root=True))
    return base.tenant(tenant) if tenant else base


@tenants_app.command("create")
def tenants_create(
    slug: Annotated[str, typer.Argument(help="Short unique name: lowercase letters, digits, - and _.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a tenant."""
    with database(database_url, data_dir) as db:
        t = _client(db).tenants.create(slug, name=name)
        print_json(t) if as_json else console.print(f"created tenant {t.slug} ({t.id})")


@tenants_app.command("list")
def tenants_list(
    as_json: JsonOpt = False, database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None
) -> None:
    """List tenants."""
    with database(database_url, data_dir) as db:
        items = list(_client(db).tenants.list(limit=1000))
        if as_json:
            print_json(items)
            return
        table = Table("slug", "name", "id", "created")
        for t in items:
            table.add_row(t.slug, t.name, str(t.id), f"{t.created_at:%Y-%m-%d %H:%M}")
        console.print(table)


@tenants_app.command("delete")
def tenants_delete(
    tenant: Annotated[str, typer.Argument(help="Tenant slug or id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a tenant and every row it owns."""
    if not yes:
        typer.confirm(f"Delete tenant {tenant} and all of its data?", abort=True)
    with database(database_url, data_dir) as db:
        c = _client(db)
        tid = c.tenant(tenant).scope().tenant_id
        assert tid is not None
        c.tenants.delete(tid)
        console.print(f"deleted tenant {tenant}")


@users_app.command("create")
def users_create(
    external_id: Annotated[str, typer.Argument(help="The app's own id for the user.")],
    tenant: TenantOpt = "default",
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    auth_id: Annotated[
        str | None, typer.Option(help="Identity provider subject (Supabase auth.uid()).")
    ] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a user in a tenant."""
    with database(database_url, data_dir) as db:
        u = _client(db, tenant).users.create(external_id, email=email, auth_id=auth_id)
        print_json(u) if as_json else console.print(f"created user {u.external_id} ({u.id})")


@users_app.command("list")
def users_list(
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the users of a tenant."""
    with database(database_url, data_dir) as db:
        items = list(_client(db, tenant).users.list(limit=1000))
        if as_json:
            print_json(items)
            return
        table = Table("external id", "email", "id", "created")
        for u in items:
            table.add_row(u.external_id, u.email or "", str(u.id), f"{u.created_at:%Y-%m-%d %H:%M}")
        console.print(table)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    tenant: TenantOpt = "default",
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help=f"One of {', '.join(SCOPES)}; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an API key; the secret is printed once."""
    with database(database_url, data_dir) as db:
        created = _client(db, tenant).keys.create(name, scopes=scope or ["read"])
        if as_json:
            print_json({"key": created.key, "secret": created.secret})
            return
        console.print(f"created key {created.key.id} scopes={','.join(created.key.scopes)}")
        console.print("secret (shown once, store it now):")
        typer.echo(created.secret)


@keys_app.command("list")
def keys_list(
    tenant: TenantOpt = "default",
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List API keys (never their secrets)."""
    with database(database_url, data_dir) as db:
        items = _client(db, tenant).keys.list(include_revoked=revoked)
        if as_json:
            print_json(items)
            return
        table = Table("id", "name", "prefix", "scopes", "last used", "revoked")
        for k in items:
            table.add_row(
                str(k.id),
                k.name,
                k.prefix + "...",
                ",".join(k.scopes),
                f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "",
                f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
            )
        console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    tenant: TenantOpt = "default",
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke an API key (it stops working at once)."""
    with database(database_url, data_dir) as db:
        k = _client(db, tenant).keys.revoke(key_id)
        console.print(f"revoked key {k.id}")


@settings_app.command("show")
def settings_show(
    tenant: TenantOpt = "default", database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Print a tenant's settings as JSON."""
    with database(database_url, data_dir) as db:
        rec = _client(db, tenant).settings.get()
        print_json({"version": rec.version, "settings": rec.settings.model_dump()})


@settings_app.command("set")
def settings_set(
    file: Annotated[
        Path,
        typer.Argument(help="JSON file with the settings document.", exists=True, dir_okay=False),
    ],
    tenant: TenantOpt = "default",
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Replace a tenant's settings with a JSON document (validated; nothing changes on error)."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{file}: not valid JSON: {exc}")
        return
    with database(database_url, data_dir) as db:
        rec = _client(db, tenant).settings.put(clean_json(doc))
        console.print(f"settings of {tenant} now at version {rec.version}")


@settings_app.command("import")
def settings_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON config file: {tenant slug or id: settings, ...}, or one document with --tenant.",
            exists=True,
            dir_okay=False,
        ),
    ],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="The file is one settings document for this tenant.")
    ] = None,
    create_tenants: Annotated[
        bool, typer.Option("--create-tenants", help="Create tenants the file names that do not exist.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report; change nothing.")] = False,
    backup: Annotated[
        bool, typer.Option("--backup/--no-backup", help="Copy the file to <file>.backup first.")
    ] = True,
    json_out: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Migrate a JSON config file into tenant settings (seed 003's migrate_config.py): validate
    every entry first (nothing changes on any error), back the file up, write all tenants in
    one transaction, then read them back and verify. Safe to run twice."""
    from ..settings_import import import_settings

    with database(database_url, data_dir) as db:
        report = import_settings(
            _client(db), file, tenant=tenant, create_tenants=create_tenants, dry_run=dry_run, backup=backup
        )
    if json_out:
        print_json(report)
        return
    verb = "would change" if dry_run else "changed"
    console.print(
        f"{file}: {verb} {len(report.changed)}, unchanged {len(report.unchanged)},"
        f" tenants created {len(report.created_tenants)}"
        + ("" if dry_run else f", verified {report.verified}")
    )
    if report.backup:
        console.print(f"backup: {report.backup}")
