"""The documented rule for text and JSON that PostgreSQL cannot store as given.

- NUL characters (U+0000) and lone surrogates (U+D800..U+DFFF) become U+FFFD, the
  Unicode replacement character, in text, in JSON strings and in JSON keys. PostgreSQL
  text and jsonb cannot hold either; replacing keeps every other character and the length.
- JSON values that are not JSON (sets, bytes, dates, objects) become their `str()`;
  tuples and sets become lists; an Enum member becomes its value; non-finite floats become
  the strings "NaN", "Infinity", "-Infinity"; non-string keys become `str(key)`.
- Numbers are stored as jsonb numerics: each comes back as the same number, though an
  integral float (3.0) may come back as an int (3).
- Values over the documented size limits raise PayloadTooLarge; nothing is truncated
  silently.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .errors import PayloadTooLarge, ValidationError

__all__ = ["clean_json", "clean_text", "json_object"]

_BAD = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """Replace NUL and lone surrogates with U+FFFD."""
    return _BAD.sub(REPLACEMENT, value) if _BAD.search(value) else value


def _clean(value: Any, depth: int) -> Any:
    if depth > 64:
        raise ValidationError("nested deeper than 64 levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, Enum):
        return _clean(value.value, depth + 1)
    return clean_text(str(value))


def clean_json(value: Any) -> Any:
    """Make any Python value storable as jsonb by the rule above."""
    return _clean(value, 0)


def json_object(value: Mapping[str, Any] | None, *, field: str, max_bytes: int) -> str:
    """Clean a metadata mapping and serialise it, enforcing the size limit."""
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise ValidationError("must be a JSON object", field=field)
    text = json.dumps(clean_json(value), ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > max_bytes:
        raise PayloadTooLarge(f"larger than {max_bytes} bytes", field=field)
    return text


def bounded_text(value: str, *, field: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise ValidationError("must be a string", field=field)
    if len(value) > max_chars:
        raise PayloadTooLarge(f"longer than {max_chars} characters", field=field)
    return clean_text(value)
