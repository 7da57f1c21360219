"""The metadata filter language, compiled to parameterised SQL by one function.

A filter is a JSON object. Its keys are field paths (dots separate levels: ``"a.b"`` is
``metadata["a"]["b"]``; paths walk objects only, never into arrays) or the logical
operators ``$and`` / ``$or`` (a list of filters) and ``$not`` (a filter); several keys are
ANDed. A field's value is either a JSON value (equality) or an object of operators:

========== ===========================================================================
``$eq``    equal (JSON equality: ``1 == 1.0``, ``true`` is not ``1``, objects ignore key
           order, arrays keep it); ``{"k": v}`` is ``{"k": {"$eq": v}}``
``$ne``    not equal; also true when the field is missing
``$in``    equal to one of a list; ``$nin``: to none of them (true when missing)
``$gt`` .. ``$lt``, ``$gte``, ``$lte``: a number compares with numbers, a string with
           strings (by code point); a field of another type never matches
``$exists`` ``true``: the field is present (even as ``null``); ``false``: absent
``$contains`` the field's array holds the value (or every value of a list operand); with
           an object operand, the field's object contains it (jsonb ``@>`` rules)
========== ===========================================================================

Equality (``$eq``, ``$in``, and ``$ne``/``$nin`` under their ``NOT``) compiles to jsonb
containment, ``metadata @> %s::jsonb``, which the GIN ``jsonb_path_ops`` index serves;
``$in`` is an OR of containments (a BitmapOr of index scans). Ranges compare typed values
(``jsonb_typeof`` first, then ``::numeric`` or text in the "C" collation) under ``CASE``,
so a string never reaches a numeric cast. Every leaf is two-valued (never SQL NULL), so
``$not`` is the exact complement. Strings and keys follow llmbase/_sanitize.py's rule (NUL
and lone surrogates become U+FFFD), as stored metadata does, so a filter matches what was
written. Limits: nesting 8 levels, 100 terms (each ``$in`` element counts), keys of 200
characters, 64 KiB in all; beyond them, or on an unknown operator, a wrong operand or a
non-JSON value (NaN, Infinity, bytes, ...), `ValidationError(field="filter")`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from psycopg import sql

from .._sanitize import clean_text
from ..errors import PayloadTooLarge, ValidationError

__all__ = [
    "MAX_DEPTH",
    "MAX_FILTER_BYTES",
    "MAX_KEY_CHARS",
    "MAX_TERMS",
    "METADATA",
    "OPERATORS",
    "compile_filter",
    "indexable",
]

MAX_DEPTH = 8
MAX_TERMS = 100
MAX_KEY_CHARS = 200
MAX_FILTER_BYTES = 65_536

_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FIELD_OPS = {"$eq", "$ne", "$in", "$nin", "$exists", "$contains", *_RANGE}
_LOGICAL = {"$and", "$or", "$not"}
OPERATORS = frozenset(_FIELD_OPS | _LOGICAL)

#: The default column filters apply to.
METADATA = sql.Identifier("metadata")
_TRUE = sql.SQL("TRUE")
_FALSE = sql.SQL("FALSE")


def _fail(message: str) -> ValidationError:
    return ValidationError(message, field="filter")


def compile_filter(
    filter: Mapping[str, Any] | None, *, column: sql.Composable = METADATA
) -> tuple[sql.Composable, list[Any]]:
    """A filter as an SQL condition on the jsonb `column`, and its parameters (in order).

    `TRUE` with no parameters for None or ``{}``. Raises ValidationError before any SQL."""
    if filter is None:
        return _TRUE, []
    if not isinstance(filter, Mapping):
        raise _fail("must be a JSON object")
    try:
        size = len(json.dumps(filter, default=str, ensure_ascii=False).encode("utf-8", "replace"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise _fail(f"not a JSON value: {exc}") from exc
    if size > MAX_FILTER_BYTES:
        raise PayloadTooLarge(f"larger than {MAX_FILTER_BYTES} bytes", field="filter")
    c = _Compiler(column)
    cond = c.filter(filter, 1)
    return cond, c.params


class _Compiler:
    def __init__(self, column: sql.Composable) -> None:
        self.column = column
        self.params: list[Any] = []
        self.terms = 0

    # -- structure ----------------------------------------------------------------------
    def filter(self, f: Any, depth: int) -> sql.Composable:
        if not isinstance(f, Mapping):
            raise _fail("a filter must be a JSON object")
        if depth > MAX_DEPTH:
            raise _fail(f"nested deeper than {MAX_DEPTH} levels")
        parts: list[sql.Composable] = []
        for key, value in f.items():
            if not isinstance(key, str):
                raise _fail(f"keys must be strings, not {type(key).__name__}")
            if key in ("$and", "$or"):
                if not isinstance(value, list | tuple):
                    raise _fail(f"{key} takes a list of filters")
                subs = [self.filter(sub, depth + 1) for sub in value]
                parts.append(_join(subs, "AND" if key == "$and" else "OR"))
            elif key == "$not":
                parts.append(sql.SQL("NOT {}").format(self.filter(value, depth + 1)))
            elif key.startswith("$"):
                if key in _FIELD_OPS:
                    raise _fail(f'{key} applies to a field: {{"field": {{"{key}": ...}}}}')
                raise _fail(f"unknown operator {_show(key)}")
            else:
                parts.append(self.field(_path(key), value, depth))
        return _join(parts, "AND")

    def field(self, path: list[str], value: Any, depth: int) -> sql.Composable:
        if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
            if not all(isinstance(k, str) and k.startswith("$") for k in value):
                raise _fail(f"{_show('.'.join(path))}: operators and plain keys mixed in one object")
            return _join([self.operator(path, op, operand, depth) for op, operand in value.items()], "AND")
        return self.eq(path, _json(value, depth))

    def operator(self, path: list[str], op: str, operand: Any, depth: int) -> sql.Composable:
        name = _show(".".join(path))
        if op == "$eq":
            return self.eq(path, _json(operand, depth))
        if op == "$ne":
            return sql.SQL("NOT {}").format(self.eq(path, _json(operand, depth)))
        if op in ("$in", "$nin"):
            if not isinstance(operand, list | tuple):
                raise _fail(f"{name}: {op} takes a list")
            if not operand:
                self.count()
            cond = _join([self.eq(path, _json(v, depth)) for v in operand], "OR")
            return cond if op == "$in" else sql.SQL("NOT {}").format(cond)
        if op in _RANGE:
            return self.range(path, _RANGE[op], operand, f"{name}: {op}")
        if op == "$exists":
            if not isinstance(operand, bool):
                raise _fail(f"{name}: $exists takes true or false")
            self.count()
            test = sql.SQL("IS NOT NULL") if operand else sql.SQL("IS NULL")
            return sql.SQL("({} {})").format(self.value(path), test)
        if op == "$contains":
            v = _json(operand, depth)
            return self.contains(path, v if isinstance(v, list | dict) else [v])
        raise _fail(f"{name}: unknown operator {_show(op)}")

    # -- leaves -------------------------------------------------------------------------
    def count(self) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise _fail(f"more than {MAX_TERMS} terms")

    def contains(self, path: list[str], value: Any) -> sql.Composable:
        """`column @> {"a": {"b": value}}`: served by the GIN index."""
        self.count()
        doc: Any = value
        for key in reversed(path):
            doc = {key: doc}
        self.params.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        return sql.SQL("({} @> %s::jsonb)").format(self.column)

    def eq(self, path: list[str], value: Any) -> sql.Composable:
        if not isinstance(value, list | dict):
            return self.contains(path, value)
        # Containment finds the candidates through the index; equality makes it exact
        # (containment alone ignores order, duplicates and extra keys).
        cond = self.contains(path, value)
        current = self.value(path)
        self.params.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        return sql.SQL("({} AND {} IS NOT DISTINCT FROM %s::jsonb)").format(cond, current)

    def range(self, path: list[str], op: str, operand: Any, where: str) -> sql.Composable:
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise _fail(f"{where} takes a number or a string")
        self.count()
        if isinstance(operand, str):
            kind, cast = "string", sql.SQL("({} #>> '{{}}') COLLATE \"C\"")
            param: str = clean_text(operand)
            typed = sql.SQL("%s::text")
        else:
            if isinstance(operand, float) and not math.isfinite(operand):
                raise _fail(f"{where}: NaN and Infinity are not JSON numbers")
            kind, cast = "number", sql.SQL("({})::numeric")
            param = repr(operand) if isinstance(operand, float) else str(operand)
            typed = sql.SQL("%s::numeric")
        check = self.value(path)
        extracted = cast.format(self.value(path))
        self.params.append(param)
        return sql.SQL("(CASE WHEN jsonb_typeof({}) = {} THEN {} {} {} ELSE false END)").format(
            check, sql.Literal(kind), extracted, sql.SQL(op), typed
        )

    def value(self, path: list[str]) -> sql.Composable:
        """`column -> 'a' -> 'b'`: NULL when missing or when a level is not an object."""
        self.params.extend(path)
        steps = [sql.SQL(" -> %s::text")] * len(path)
        return sql.SQL("({}{})").format(self.column, sql.Composed(steps))


def indexable(filter: Mapping[str, Any] | None) -> bool:
    """Whether a (valid, non-empty) filter is served by the GIN index alone: equality,
    $in and $contains joined by $and / $or, nothing negated and no ranges. The planner's row
    estimate for such a filter comes from the column's statistics (search.py trusts it)."""
    if not filter:
        return False

    def walk(f: Mapping[str, Any]) -> bool:
        for key, value in f.items():
            if key in ("$and", "$or"):
                if not all(isinstance(sub, Mapping) and (not sub or walk(sub)) for sub in value):
                    return False
            elif key.startswith("$") or (
                isinstance(value, Mapping)
                and any(str(k).startswith("$") for k in value)
                and not set(value) <= {"$eq", "$in", "$contains"}
            ):
                return False
        return True

    return walk(filter)


# -- values and paths ------------------------------------------------------------------------
def _path(key: str) -> list[str]:
    if len(key) > MAX_KEY_CHARS:
        raise _fail(f"key longer than {MAX_KEY_CHARS} characters")
    parts = key.split(".")
    if any(p == "" for p in parts):
        raise _fail(f"empty segment in key {_show(key)}")
    if len(parts) > MAX_DEPTH:
        raise _fail(f"key {_show(key)} is nested deeper than {MAX_DEPTH} levels")
    return [clean_text(p) for p in parts]


def _json(value: Any, depth: int) -> Any:
    """A filter operand as plain JSON (tuples become lists), or a ValidationError."""
    if depth > MAX_DEPTH:
        raise _fail(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail("NaN and Infinity are not JSON numbers")
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list | tuple):
        return [_json(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(f"keys must be strings, not {type(k).__name__}")
            if len(k) > MAX_KEY_CHARS:
                raise _fail(f"key longer than {MAX_KEY_CHARS} characters")
            out[clean_text(k)] = _json(v, depth + 1)
        return out
    raise _fail(f"not a JSON value: {type(value).__name__}")


def _join(parts: list[sql.Composable], op: str) -> sql.Composable:
    if not parts:
        return _TRUE if op == "AND" else _FALSE
    if len(parts) == 1:
        return parts[0]
    sep = sql.SQL(" AND ") if op == "AND" else sql.SQL(" OR ")
    return sql.SQL("(") + sep.join(parts) + sql.SQL(")")


def _show(key: str) -> str:
    return json.dumps(key[:60] + ("..." if len(key) > 60 else ""), ensure_ascii=False)
