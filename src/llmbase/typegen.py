"""Types for application code, generated from the live schema (Supabase's database.types.ts).

`generate(url, "typescript")` gives a `Database` type usable with supabase-js
(`createClient<Database>(..., { db: { schema: "llmbase" } })`); `generate(url, "python")`
gives TypedDicts (Row, Insert, Update per table; Row per view) that pass `mypy --strict`.
Output is sorted, so it changes only when the schema does.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass, field
from enum import StrEnum

import psycopg

from . import migrate
from .config import SCHEMA
from .errors import DatabaseUnavailable
from .snapshot import VERSION_TABLE

__all__ = ["Lang", "generate"]


class Lang(StrEnum):
    typescript = "typescript"
    python = "python"


@dataclass(frozen=True)
class PgType:
    name: str  # base type name (domains resolved, array element for arrays)
    is_array: bool
    enum: bool


@dataclass(frozen=True)
class Column:
    name: str
    type: PgType
    nullable: bool
    has_default: bool
    generated: bool  # GENERATED ALWAYS (identity or stored): never written by clients


@dataclass(frozen=True)
class Relationship:
    name: str
    columns: list[str]
    one_to_one: bool
    referenced: str
    referenced_columns: list[str]


@dataclass
class Relation:
    name: str
    is_view: bool
    columns: list[Column] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)


@dataclass(frozen=True)
class Function:
    name: str
    args: list[tuple[str, PgType, bool]]  # name, type, optional (has a default)
    returns: PgType | None  # None: void
    returns_set: bool
    out_columns: list[tuple[str, PgType]]  # RETURNS TABLE / OUT parameters


@dataclass
class Schema:
    revision: str | None
    relations: list[Relation]
    functions: list[Function]
    enums: dict[str, list[str]]


# -- catalog --------------------------------------------------------------------------------

_TYPES = """
SELECT t.oid, b.typname, t.typcategory = 'A' AND t.typelem <> 0, b.typtype = 'e'
  FROM pg_type t
  JOIN pg_type e ON e.oid = CASE WHEN t.typcategory = 'A' AND t.typelem <> 0
                                 THEN t.typelem ELSE t.oid END
  JOIN pg_type b ON b.oid = CASE WHEN e.typtype = 'd' THEN e.typbasetype ELSE e.oid END
 WHERE t.oid = ANY(%s::oid[])
"""

_COLUMNS = """
SELECT c.relname, c.relkind IN ('v', 'm'), a.attname, a.atttypid::int, NOT a.attnotnull,
       a.atthasdef OR a.attidentity = 'd', a.attidentity = 'a' OR a.attgenerated <> ''
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname <> %s
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum
"""

_RELATIONSHIPS = """
SELECT t.relname, k.conname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o),
       EXISTS (SELECT 1 FROM pg_constraint x
                WHERE x.conrelid = k.conrelid AND x.contype IN ('p', 'u')
                  AND x.conkey <@ k.conkey AND k.conkey <@ x.conkey),
       r.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, o)
               JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o)
  FROM pg_constraint k
  JOIN pg_class t ON t.oid = k.conrelid
  JOIN pg_class r ON r.oid = k.confrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %s AND k.contype = 'f'
 ORDER BY t.relname, k.conname
"""

_FUNCTIONS = """
SELECT p.proname, coalesce(p.proargnames, '{}')::text[],
       coalesce(p.proargmodes::text[], array_fill('i'::text, ARRAY[p.pronargs::int])),
       coalesce(p.proallargtypes, p.proargtypes::oid[])::int[],
       p.pronargdefaults, p.prorettype::int, p.prorettype = 'void'::regtype, p.proretset
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = %s AND p.prokind = 'f'
   AND p.prorettype <> 'trigger'::regtype
 ORDER BY p.proname, p.oid::regprocedure::text
"""

_ENUMS = """
SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
  JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = %s
 GROUP BY t.typname ORDER BY t.typname
"""


def _types(conn: psycopg.Connection, oids: set[int]) -> dict[int, PgType]:
    rows = conn.execute(_TYPES, (sorted(oids),))
    return {oid: PgType(name, arr, enum) for oid, name, arr, enum in rows}


def read_schema(conn: psycopg.Connection, revision: str | None = None) -> Schema:
    """Tables, views, functions and enums of schema llmbase (the migration table left out)."""
    col_rows = conn.execute(_COLUMNS, (SCHEMA, VERSION_TABLE)).fetchall()
    fn_rows = conn.execute(_FUNCTIONS, (SCHEMA,)).fetchall()
    oids = {r[3] for r in col_rows} | {o for r in fn_rows for o in r[3]} | {r[5] for r in fn_rows}
    types = _types(conn, oids)

    relations: dict[str, Relation] = {}
    for rel, is_view, name, oid, nullable, has_default, generated in col_rows:
        relation = relations.setdefault(rel, Relation(rel, is_view))
        relation.columns.append(Column(name, types[oid], nullable, has_default, generated))
    for rel, fk, cols, one, ref, ref_cols in conn.execute(_RELATIONSHIPS, (SCHEMA,)):
        if rel in relations:
            relations[rel].relationships.append(Relationship(fk, cols, one, ref, ref_cols))

    functions = []
    for name, argnames, modes, argtypes, ndefaults, rettype, void, retset in fn_rows:
        inputs = [i for i, m in enumerate(modes) if m in ("i", "b", "v")]
        first_default = len(inputs) - ndefaults
        args = [
            (_arg_name(argnames, i), types[argtypes[i]], pos >= first_default) for pos, i in enumerate(inputs)
        ]
        outs = [
            (_arg_name(argnames, i), types[argtypes[i]]) for i, m in enumerate(modes) if m in ("o", "b", "t")
        ]
        returns = None if void else types[rettype]
        functions.append(Function(name, args, returns, retset, outs))

    enums = {name: list(labels) for name, labels in conn.execute(_ENUMS, (SCHEMA,))}
    for relation in relations.values():  # by name, as Supabase's generator does
        relation.columns.sort(key=lambda c: c.name)
    return Schema(revision, sorted(relations.values(), key=lambda r: r.name), functions, enums)


def _arg_name(names: list[str], i: int) -> str:
    return names[i] if i < len(names) and names[i] else f"arg{i + 1}"


# -- TypeScript -----------------------------------------------------------------------------

_TS_TYPES = {
    "bool": "boolean",
    "int2": "number",
    "int4": "number",
    "int8": "number",
    "float4": "number",
    "float8": "number",
    "numeric": "number",
    "oid": "number",
    "json": "Json",
    "jsonb": "Json",
    "record": "Record<string, unknown>",
}
_TS_STRINGS = {
    "text", "varchar", "bpchar", "char", "name", "citext", "uuid", "date", "time", "timetz",
    "timestamp", "timestamptz", "interval", "bytea", "inet", "cidr", "macaddr", "money",
    "tsvector", "tsquery", "xml", "bit", "varbit", "vector", "halfvec", "sparsevec",
}  # fmt: skip
_TS_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _ts_key(name: str) -> str:
    return name if _TS_IDENT.match(name) else json.dumps(name)


def _ts_type(t: PgType) -> str:
    if t.enum:
        base = f'Database["{SCHEMA}"]["Enums"][{json.dumps(t.name)}]'
    elif t.name in _TS_STRINGS:
        base = "string"
    else:
        base = _TS_TYPES.get(t.name, "unknown")
    return f"{base}[]" if t.is_array else base


def _ts_fields(out: list[str], indent: str, fields: list[tuple[str, str, bool]]) -> None:
    """Lines `name?: type` inside braces already opened by the caller."""
    if not fields:
        out.append(f"{indent}[_ in never]: never")
    for name, typ, optional in fields:
        out.append(f"{indent}{_ts_key(name)}{'?' if optional else ''}: {typ}")


def _ts_column(c: Column) -> str:
    return _ts_type(c.type) + (" | null" if c.nullable else "")


def _ts_relation(out: list[str], rel: Relation) -> None:
    i = " " * 8
    out.append(f"      {_ts_key(rel.name)}: {{")
    sections = [("Row", [(c.name, _ts_column(c), False) for c in rel.columns])]
    if not rel.is_view:
        writable = [(c.name, "never" if c.generated else _ts_column(c), c.generated) for c in rel.columns]
        insert = [
            (n, t, gen or c.nullable or c.has_default)
            for (n, t, gen), c in zip(writable, rel.columns, strict=True)
        ]
        sections += [("Insert", insert), ("Update", [(n, t, True) for n, t, _ in writable])]
    for title, fields in sections:
        out.append(f"{i}{title}: {{")
        _ts_fields(out, i + "  ", fields)
        out.append(f"{i}}}")
    if not rel.relationships:
        out.append(f"{i}Relationships: []")
    else:
        out.append(f"{i}Relationships: [")
        for r in rel.relationships:
            out += [
                f"{i}  {{",
                f"{i}    foreignKeyName: {json.dumps(r.name)}",
                f"{i}    columns: {json.dumps(r.columns)}",
                f"{i}    isOneToOne: {'true' if r.one_to_one else 'false'}",
                f"{i}    referencedRelation: {json.dumps(r.referenced)}",
                f"{i}    referencedColumns: {json.dumps(r.referenced_columns)}",
                f"{i}  }},",
            ]
        out.append(f"{i}]")
    out.append("      }")


def _ts_function(fn: Function, i: str) -> list[str]:
    """The lines inside `{ ... }` describing one function, indented by `i`."""
    lines: list[str] = []
    if fn.args:
        lines.append(f"{i}Args: {{")
        _ts_fields(lines, i + "  ", [(n, _ts_type(t), opt) for n, t, opt in fn.args])
        lines.append(f"{i}}}")
    else:
        lines.append(f"{i}Args: Record<PropertyKey, never>")
    suffix = "[]" if fn.returns_set else ""
    if fn.out_columns and (fn.returns_set or len(fn.out_columns) > 1):
        lines.append(f"{i}Returns: {{")
        _ts_fields(lines, i + "  ", [(n, _ts_type(t), False) for n, t in fn.out_columns])
        lines.append(f"{i}}}{suffix}")
    else:
        ret = "undefined" if fn.returns is None else _ts_type(fn.returns)
        lines.append(f"{i}Returns: {ret}{suffix}")
    return lines


def _ts_functions(out: list[str], functions: list[Function]) -> None:
    for name in sorted({f.name for f in functions}):
        overloads = [f for f in functions if f.name == name]
        if len(overloads) == 1:
            out.append(f"      {_ts_key(name)}: {{")
            out += _ts_function(overloads[0], " " * 8)
            out.append("      }")
            continue
        out.append(f"      {_ts_key(name)}:")
        for fn in overloads:
            out.append("        | {")
            out += _ts_function(fn, " " * 12)
            out.append("          }")


def typescript(schema: Schema) -> str:
    out = [
        f"// Types of the {SCHEMA} schema at revision {schema.revision or 'base'}.",
        "// Generated by `llmbase types --lang typescript`; do not edit, regenerate.",
        "",
        "export type Json =",
        "  | string",
        "  | number",
        "  | boolean",
        "  | null",
        "  | { [key: string]: Json | undefined }",
        "  | Json[]",
        "",
        "export type Database = {",
        f"  {SCHEMA}: {{",
    ]
    for title, views in (("Tables", False), ("Views", True)):
        rels = [r for r in schema.relations if r.is_view == views]
        if not rels:
            out.append(f"    {title}: {{ [_ in never]: never }}")
            continue
        out.append(f"    {title}: {{")
        for rel in rels:
            _ts_relation(out, rel)
        out.append("    }")
    if schema.functions:
        out.append("    Functions: {")
        _ts_functions(out, schema.functions)
        out.append("    }")
    else:
        out.append("    Functions: { [_ in never]: never }")
    if schema.enums:
        out.append("    Enums: {")
        for name, labels in schema.enums.items():
            out.append(f"      {_ts_key(name)}: {' | '.join(json.dumps(x) for x in labels)}")
        out.append("    }")
    else:
        out.append("    Enums: { [_ in never]: never }")
    out += [
        "    CompositeTypes: { [_ in never]: never }",
        "  }",
        "}",
        "",
        f'type Schema = Database["{SCHEMA}"]',
        "",
        'export type Tables<T extends keyof Schema["Tables"]> = Schema["Tables"][T]["Row"]',
        'export type TablesInsert<T extends keyof Schema["Tables"]> = Schema["Tables"][T]["Insert"]',
        'export type TablesUpdate<T extends keyof Schema["Tables"]> = Schema["Tables"][T]["Update"]',
        'export type Views<T extends keyof Schema["Views"]> = Schema["Views"][T]["Row"]',
        'export type Enums<T extends keyof Schema["Enums"]> = Schema["Enums"][T]',
        "",
    ]
    return "\n".join(out)


# -- Python ---------------------------------------------------------------------------------

# What psycopg returns for each type, with the module each name needs.
_PY_TYPES: dict[str, tuple[str, str | None]] = {
    "bool": ("bool", None),
    "int2": ("int", None),
    "int4": ("int", None),
    "int8": ("int", None),
    "oid": ("int", None),
    "float4": ("float", None),
    "float8": ("float", None),
    "numeric": ("_decimal.Decimal", "import decimal as _decimal"),
    "uuid": ("_uuid.UUID", "import uuid as _uuid"),
    "date": ("_dt.date", "import datetime as _dt"),
    "timestamp": ("_dt.datetime", "import datetime as _dt"),
    "timestamptz": ("_dt.datetime", "import datetime as _dt"),
    "time": ("_dt.time", "import datetime as _dt"),
    "timetz": ("_dt.time", "import datetime as _dt"),
    "interval": ("_dt.timedelta", "import datetime as _dt"),
    "bytea": ("bytes", None),
    "json": ("Json", None),
    "jsonb": ("Json", None),
}
_PY_STRINGS = {"text", "varchar", "bpchar", "char", "name", "citext", "xml", "tsvector"}


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


class _PyWriter:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.imports: set[str] = set()
        self.typing: set[str] = {"TypedDict"}
        self.uses_json = False

    def type(self, t: PgType) -> str:
        if t.enum:
            self.typing.add("Literal")
            base = f"Literal[{', '.join(json.dumps(x) for x in self.schema.enums[t.name])}]"
        elif t.name in _PY_STRINGS:
            base = "str"
        elif t.name in _PY_TYPES:
            base, module = _PY_TYPES[t.name]
            if module:
                self.imports.add(module)
            self.uses_json |= base == "Json"
        else:  # vectors and other extension types: depends on the adapters registered
            self.typing.add("Any")
            base = "Any"
        return f"list[{base}]" if t.is_array else base

    def column(self, c: Column) -> str:
        return self.type(c.type) + (" | None" if c.nullable else "")

    def typed_dict(self, name: str, fields: list[tuple[str, str]], total: bool = True) -> str:
        if all(f.isidentifier() and not keyword.iskeyword(f) for f, _ in fields):
            head = f"class {name}(TypedDict{'' if total else ', total=False'}):"
            body = [f"    {f}: {t}" for f, t in fields] or ["    pass"]
            return "\n".join([head, *body])
        # Keywords and non-identifiers cannot be class attributes: the functional form.
        lines = [f"{name} = TypedDict(", f"    {json.dumps(name)},", "    {"]
        lines += [f"        {json.dumps(f)}: {t}," for f, t in fields]
        lines += ["    },", *([] if total else ["    total=False,"]), ")"]
        return "\n".join(lines)

    def render(self) -> str:
        blocks: list[str] = []
        for rel in self.schema.relations:
            base = _pascal(rel.name)
            row = [(c.name, self.column(c)) for c in rel.columns]
            blocks.append(self.typed_dict(base + "Row", row))
            if rel.is_view:
                continue
            writable = [c for c in rel.columns if not c.generated]
            insert = []
            for c in writable:
                typ = self.column(c)
                if c.nullable or c.has_default:
                    self.typing.add("NotRequired")
                    typ = f"NotRequired[{typ}]"
                insert.append((c.name, typ))
            blocks.append(self.typed_dict(base + "Insert", insert))
            update = [(c.name, self.column(c)) for c in writable]
            blocks.append(self.typed_dict(base + "Update", update, total=False))
        header = [
            f'"""Types of the {SCHEMA} schema at revision {self.schema.revision or "base"}.',
            "",
            "Generated by `llmbase types --lang python`; do not edit, regenerate.",
            '"""',
            "",
            "",
        ]
        prelude: list[str] = []
        if self.uses_json:
            self.typing.add("TypeAlias")
            prelude.append(
                'Json: TypeAlias = dict[str, "Json"] | list["Json"] | str | int | float | bool | None'
            )
        imports = [*sorted(self.imports), f"from typing import {', '.join(sorted(self.typing))}"]
        prelude.insert(0, "\n".join(imports))
        return "\n".join(header) + "\n\n".join(prelude) + "\n\n\n" + "\n\n\n".join(blocks) + "\n"


def python(schema: Schema) -> str:
    return _PyWriter(schema).render()


# -- entry point ----------------------------------------------------------------------------


def generate(url: str, lang: Lang | str) -> str:
    """Types for the schema of the database at `url`, in TypeScript or Python."""
    lang = Lang(lang)
    try:
        with psycopg.connect(url) as conn:
            schema = read_schema(conn)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    schema.revision = migrate.current(url)
    return typescript(schema) if lang is Lang.typescript else python(schema)
