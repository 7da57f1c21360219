"""Import tenant settings from a JSON config file (seed 003's migrate_config.py, done safely).

The file holds either one settings document (for `tenant=`) or an object mapping tenant
slugs or ids to documents, e.g. a bot's `server_config.json` keyed by server id:

    {"123456789012345678": {"prefix": "!", "allowed_channels": ["general"]}, ...}

Every document is validated before anything is written (an error names the tenant and the
field, and nothing changes); all tenants are written in one transaction; the file is backed
up beside itself first; afterwards every tenant's stored settings are read back and compared.
Running it twice is safe: identical settings are left alone (no new version, no audit entry).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ._sanitize import clean_json
from .errors import NotFound, ValidationError
from .settings import TenantSettings, validate_settings
from .stores._common import Ctx
from .stores._plan import Plan, Query

if TYPE_CHECKING:
    from .client import LLMBase

__all__ = ["ImportReport", "import_settings", "load_settings_file"]

_SLUG_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass
class ImportReport:
    """What an import did (or, with dry_run, would do), per tenant key of the file."""

    file: str | None
    sha256: str | None
    dry_run: bool
    created_tenants: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    verified: int = 0
    backup: str | None = None


def load_settings_file(path: str | Path) -> tuple[Any, bytes]:
    """The parsed JSON and the raw bytes; a clear ValidationError for unreadable input."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {p}: {exc.strerror or exc}", field="file") from None
    try:
        return json.loads(raw.decode("utf-8")), raw
    except UnicodeDecodeError:
        raise ValidationError(f"{p} is not UTF-8 text", field="file") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{p} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="file"
        ) from None


def _entries(data: Any, tenant: str | None) -> dict[str, TenantSettings]:
    """Validate every document up front; the error's field is `<tenant key>.<path>`."""
    if tenant is not None:
        data = {tenant: data}
    if not isinstance(data, dict) or not data:
        raise ValidationError("must be a JSON object mapping tenants to settings", field="file")
    out: dict[str, TenantSettings] = {}
    for key, doc in data.items():
        ref = str(key)
        if not ref or len(ref) > 63 or not (set(ref) <= _SLUG_CHARS or _is_uuid(ref)):
            raise ValidationError(
                "a tenant key must be a slug (lowercase letters, digits, - and _) or an id",
                field=ref[:80] or "(empty key)",
            )
        try:
            out[ref] = validate_settings(clean_json(doc))
        except ValidationError as exc:
            raise ValidationError(exc.reason, field=f"{ref}.{exc.field}") from None
    return out


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _stored(model: TenantSettings) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


def _write(
    ctx: Ctx, entries: dict[str, TenantSettings], create: bool, dry_run: bool, report: ImportReport
) -> Plan[dict[str, UUID]]:
    ids: dict[str, UUID] = {}
    for ref, model in entries.items():
        row = yield Query(
            "SELECT id FROM llmbase.tenants WHERE slug = %s OR id = llmbase.safe_uuid(%s)",
            (ref, ref),
            fetch="optional",
            tuples=True,
        )
        if row is None:
            if not create:
                raise NotFound("tenant", ref)
            report.created_tenants.append(ref)
            if dry_run:
                report.changed.append(ref)
                continue
            row = yield Query(
                "INSERT INTO llmbase.tenants (slug, name) VALUES (%s, %s) RETURNING id",
                (ref, ref),
                fetch="one",
                tuples=True,
            )
        tid = row[0]
        ids[ref] = tid
        current = yield Query(
            "SELECT settings FROM llmbase.tenant_settings WHERE tenant_id = %s",
            (tid,),
            fetch="optional",
            tuples=True,
        )
        if current is not None and validate_settings(current[0]) == model:
            report.unchanged.append(ref)
            continue
        report.changed.append(ref)
        if dry_run:
            continue
        yield Query(
            "INSERT INTO llmbase.tenant_settings AS s (tenant_id, settings) VALUES (%s, %s::jsonb)"
            " ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings, version = s.version + 1",
            (tid, json.dumps(_stored(model))),
            fetch="none",
        )
    if not dry_run and report.changed:
        yield Query(
            "SELECT llmbase.audit_event('settings.import', 'settings_file', %s, NULL, NULL, %s::jsonb)",
            (
                report.file,
                json.dumps(
                    {
                        "sha256": report.sha256,
                        "changed": report.changed,
                        "created_tenants": report.created_tenants,
                        "unchanged": len(report.unchanged),
                    }
                ),
            ),
            fetch="none",
        )
    return ids


def _read_back(ctx: Ctx, ids: dict[str, UUID]) -> Plan[dict[str, Any]]:
    rows = yield Query(
        "SELECT tenant_id, settings FROM llmbase.tenant_settings WHERE tenant_id = ANY(%s)",
        (list(ids.values()),),
        tuples=True,
    )
    return {str(r[0]): r[1] for r in rows}


def _backup(path: Path, raw: bytes) -> str:
    """`<file>.backup`, or a timestamped name when a different backup is already there."""
    target = path.with_name(path.name + ".backup")
    if target.exists() and target.read_bytes() != raw:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = path.with_name(f"{path.name}.backup-{stamp}")
    if not target.exists():
        shutil.copy2(path, target)
    return str(target)


def import_settings(
    client: LLMBase,
    source: str | Path | Mapping[str, Any],
    *,
    tenant: str | None = None,
    create_tenants: bool = False,
    dry_run: bool = False,
    backup: bool = True,
) -> ImportReport:
    """Import settings from a JSON file (or an already parsed mapping). `tenant`: the file is
    one document for that tenant (slug or id). `create_tenants`: create tenants the file names
    that do not exist yet (else NotFound, nothing changed). Needs the root client."""
    if isinstance(source, Mapping):
        data: Any = dict(source)
        raw = json.dumps(data, sort_keys=True, default=str).encode()
        path = None
    else:
        path = Path(source)
        data, raw = load_settings_file(path)
    entries = _entries(data, tenant)
    report = ImportReport(
        file=str(path) if path else None, sha256=hashlib.sha256(raw).hexdigest(), dry_run=dry_run
    )
    operator = client.admin()._core
    if path is not None and backup and not dry_run:
        report.backup = _backup(path, raw)
    ids = operator.run(_write, entries, create_tenants, dry_run, report)
    if dry_run:
        return report
    stored = operator.run(_read_back, ids)
    for ref, model in entries.items():
        got = stored.get(str(ids[ref]))
        if got is None or validate_settings(got) != model:
            raise ValidationError("verification failed: the stored settings differ from the file", field=ref)
        report.verified += 1
    return report
