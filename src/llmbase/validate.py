"""Check a live database against the schema this version of llmbase expects (seed 003's
validate.sql, done from the catalog): every table, column, constraint, index, function,
trigger and policy of the bundled manifest, forced RLS everywhere, and the security
invariants of the application role.

Extra indexes are the operator's business and pass; any other object the manifest does
not list fails, because an unknown policy, trigger or function can widen access.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import psycopg

from . import migrate
from .config import ADMIN_ROLE, APP_ROLE, SCHEMA
from .errors import DatabaseUnavailable
from .snapshot import VERSION_TABLE, Manifest, load_manifest, read_catalog

__all__ = ["CATEGORIES", "CategoryResult", "Check", "Report", "validate"]

CATEGORIES = (
    "Extensions",
    "Tables",
    "Columns/Types",
    "Constraints",
    "Indexes",
    "Functions",
    "Triggers",
    "RLS",
    "Security",
    "Migrations",
)


@dataclass(frozen=True)
class Check:
    """One test: `name` says what was checked, `detail` why it failed."""

    category: str
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class CategoryResult:
    category: str
    total: int
    passed: int
    failed: int


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def categories(self) -> list[CategoryResult]:
        """One row per category, in CATEGORIES order (categories without checks omitted)."""
        rows = []
        for cat in CATEGORIES:
            mine = [c for c in self.checks if c.category == cat]
            if mine:
                passed = sum(c.ok for c in mine)
                rows.append(CategoryResult(cat, len(mine), passed, len(mine) - passed))
        return rows

    def failed_in(self, category: str) -> list[Check]:
        return [c for c in self.failures if c.category == category]

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "categories": [asdict(r) for r in self.categories()],
            "failures": [asdict(c) for c in self.failures],
        }


K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def _compare(
    category: str,
    kind: str,
    expected: Iterable[T],
    live: Iterable[T],
    key: Callable[[T], K],
    label: Callable[[K], str],
    differences: Callable[[T, T], list[str]],
    extras_fail: bool = True,
) -> Iterator[Check]:
    """A check per expected object (present and equal) and per unexpected live one."""
    have = {key(o): o for o in live}
    want = {key(o): o for o in expected}
    for k, exp in want.items():
        name = f"{kind} {label(k)}"
        got = have.get(k)
        if got is None:
            yield Check(category, name, False, "missing")
        else:
            diffs = differences(exp, got)
            yield Check(category, name, not diffs, "; ".join(diffs))
    if extras_fail:
        for k in have.keys() - want.keys():
            yield Check(category, f"{kind} {label(k)}", False, "unexpected (not in the manifest)")


def _diff(exp: Mapping[str, object], got: Mapping[str, object], fields: Iterable[str]) -> list[str]:
    return [f"{f}: expected {exp[f]!r}, found {got[f]!r}" for f in fields if exp[f] != got[f]]


def _schema_checks(exp: Manifest, live: Manifest) -> Iterator[Check]:
    for ext in exp["extensions"]:
        present = ext in live["extensions"]
        yield Check("Extensions", f"extension {ext}", present, "" if present else "not installed")

    yield from _compare("Tables", "table", exp["tables"], live["tables"], str, str, lambda a, b: [])
    yield from _compare(
        "Tables",
        "view",
        exp["views"],
        live["views"],
        lambda v: v["name"],
        str,
        lambda a, b: [] if a["columns"] == b["columns"] else ["columns differ"],
    )

    for table, spec in exp["tables"].items():
        live_table = live["tables"].get(table)
        live_cols = {c["name"]: c for c in live_table["columns"]} if live_table else {}
        for col in spec["columns"]:
            name = f"column {table}.{col['name']}"
            got = live_cols.get(col["name"])
            if got is None:
                yield Check("Columns/Types", name, False, "missing")
            else:
                diffs = _diff(col, got, ("type", "not_null"))
                yield Check("Columns/Types", name, not diffs, "; ".join(diffs))
        known = {c["name"] for c in spec["columns"]}
        for extra in sorted(live_cols.keys() - known):
            yield Check("Columns/Types", f"column {table}.{extra}", False, "unexpected")

    def by_table(o: Mapping[str, object]) -> tuple[str, str]:
        return (str(o["table"]), str(o["name"]))

    def dotted(k: tuple[str, str]) -> str:
        return f"{k[1]} on {k[0]}"

    yield from _compare(
        "Constraints",
        "constraint",
        exp["constraints"],
        live["constraints"],
        by_table,
        dotted,
        lambda a, b: _diff(a, b, ("definition",)),
    )
    yield from _compare(
        "Indexes",
        "index",
        exp["indexes"],
        live["indexes"],
        by_table,
        dotted,
        lambda a, b: _diff(a, b, ("definition",)),
        extras_fail=False,
    )
    yield from _compare(
        "Functions",
        "function",
        exp["functions"],
        live["functions"],
        lambda f: f["signature"],
        str,
        lambda a, b: _diff(a, b, ("security_definer", "config")),
    )
    yield from _compare(
        "Triggers",
        "trigger",
        exp["triggers"],
        live["triggers"],
        by_table,
        dotted,
        lambda a, b: _diff(a, b, ("definition", "enabled")),
    )


def _rls_checks(exp: Manifest, live: Manifest) -> Iterator[Check]:
    for table in sorted(live["tables"].keys() | exp["tables"].keys()):
        if table == VERSION_TABLE:
            continue  # the migration tool's bookkeeping: no client role has any privilege on it
        got = live["tables"].get(table)
        name = f"row level security enabled and forced on {table}"
        if got is None:
            yield Check("RLS", name, False, "table missing")
            continue
        missing = [f for f in ("rls", "force_rls") if not got[f]]
        detail = "" if not missing else ("not enabled" if "rls" in missing else "not forced")
        yield Check("RLS", name, not missing, detail)
    yield from _compare(
        "RLS",
        "policy",
        exp["policies"],
        live["policies"],
        lambda p: (p["table"], p["name"]),
        lambda k: f"{k[1]} on {k[0]}",
        lambda a, b: _diff(a, b, ("cmd", "permissive", "roles", "using", "with_check")),
    )


_ROLE = "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s"

_OWNED = """
SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
 WHERE d.refclassid = 'pg_authid'::regclass AND d.deptype = 'o' AND r.rolname = %s
   AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
 ORDER BY 1
"""

_TABLE_PRIVILEGE = """
SELECT c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND has_table_privilege(%s, c.oid, %s)
 ORDER BY 1
"""

_PUBLIC_GRANTS = """
SELECT c.relname || ': ' || a.privilege_type
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
 WHERE n.nspname = %(schema)s AND a.grantee = 0
UNION ALL
SELECT 'schema ' || n.nspname || ': ' || a.privilege_type
  FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname = %(schema)s AND a.grantee = 0
 ORDER BY 1
"""


def _role_checks(conn: psycopg.Connection, role: str, *, app: bool) -> Iterator[Check]:
    row = conn.execute(_ROLE, (role,)).fetchone()
    yield Check("Security", f"role {role} exists", row is not None, "" if row else "missing")
    if row is None:
        return
    superuser, bypassrls = row
    yield Check("Security", f"{role} is not superuser", not superuser, "is superuser")
    yield Check("Security", f"{role} has no BYPASSRLS", not bypassrls, "has BYPASSRLS")
    if not app:
        return
    owned = [r[0] for r in conn.execute(_OWNED, (role,))]
    yield Check("Security", f"{role} owns no object", not owned, "owns " + ", ".join(owned))
    for privilege in ("TRUNCATE", "REFERENCES", "TRIGGER"):
        tables = [r[0] for r in conn.execute(_TABLE_PRIVILEGE, (SCHEMA, role, privilege))]
        yield Check(
            "Security",
            f"{role} has no {privilege} privilege on {SCHEMA} tables",
            not tables,
            "granted on " + ", ".join(tables),
        )
    create = conn.execute(
        "SELECT n.nspname FROM pg_namespace n"
        " WHERE n.nspname = %s AND has_schema_privilege(%s, n.oid, 'CREATE')",
        (SCHEMA, role),
    ).fetchone()
    yield Check("Security", f"{role} cannot create objects in {SCHEMA}", create is None, "has CREATE")
    version = [r[0] for r in conn.execute(_TABLE_PRIVILEGE, (SCHEMA, role, "SELECT,INSERT,UPDATE,DELETE"))]
    touches = VERSION_TABLE in version
    yield Check(
        "Security",
        f"{role} has no privilege on {VERSION_TABLE}",
        not touches,
        "can read or write the migration version",
    )


def _unsafe_search_path(config: list[str]) -> str | None:
    """Why a SECURITY DEFINER function's settings are unsafe, or None when they are not."""
    paths = [c.split("=", 1)[1] for c in config if c.startswith("search_path=")]
    if not paths:
        return "search_path not pinned"
    entries = {p.strip().strip('"').lower() for p in paths[0].split(",")}
    writable = entries & {"$user", "public"}
    return f"search_path includes {', '.join(sorted(writable))}" if writable else None


def _security_checks(conn: psycopg.Connection, live: Manifest) -> Iterator[Check]:
    yield from _role_checks(conn, APP_ROLE, app=True)
    yield from _role_checks(conn, ADMIN_ROLE, app=False)
    public = [r[0] for r in conn.execute(_PUBLIC_GRANTS, {"schema": SCHEMA})]
    yield Check(
        "Security",
        f"PUBLIC has no privilege on {SCHEMA} or its tables",
        not public,
        "; ".join(public),
    )
    for fn in live["functions"]:
        if fn["security_definer"]:
            why = _unsafe_search_path(fn["config"])
            yield Check(
                "Security",
                f"SECURITY DEFINER {fn['signature']} pins search_path",
                why is None,
                why or "",
            )
    for view in live["views"]:
        yield Check(
            "Security",
            f"view {view['name']} is security_invoker",
            view["security_invoker"],
            "runs with the owner's rights (RLS of the owner, not the caller)",
        )


def _migration_checks(url: str, manifest: Manifest) -> Iterator[Check]:
    head = migrate.head()
    current = migrate.current(url)
    yield Check(
        "Migrations",
        "schema revision is head",
        current == head,
        f"at {current or 'base'}, head is {head}: run `llmbase migrate up`",
    )
    yield Check(
        "Migrations",
        "manifest matches the code's head",
        manifest["head"] == head,
        f"manifest describes {manifest['head']}, code head is {head}: run `python tools/snapshot.py`",
    )


def validate(url: str, manifest: Manifest | None = None) -> Report:
    """Compare the database at `url` with the expected schema (the bundled manifest)."""
    expected = manifest if manifest is not None else load_manifest()
    checks: list[Check] = []
    try:
        with psycopg.connect(url) as conn:
            live = read_catalog(conn)
            checks.extend(_schema_checks(expected, live))
            checks.extend(_rls_checks(expected, live))
            checks.extend(_security_checks(conn, live))
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    checks.extend(_migration_checks(url, expected))
    # Passing checks' details are noise; keep them only for failures.
    return Report([c if not c.ok else Check(c.category, c.name, True) for c in checks])
