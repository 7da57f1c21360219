"""Embedding vectors: checked before they reach the database, then packed for binary COPY.

A vector must be a flat sequence of real numbers (a list, tuple, array.array or 1-d numpy
array; no bools, strings or None), non-empty, of exactly the collection's dimension, and
finite once stored as float4 (NaN, +-Inf and values beyond float4's range are refused;
halfvec collections also refuse values beyond +-65504), and not all zeros in a cosine
collection (a zero vector has no direction: its cosine distance is NaN). Every failure is a
ValidationError naming the culprit, raised before anything is written.

`check` returns the vector as big-endian float4 bytes; `pack` wraps those in PostgreSQL's
binary format of `real[]` (array_send), so a binary COPY streams them into a `real[]`
column as raw bytes (typed "bytea" on the client side: psycopg passes bytes through
unchanged, the server reads them with the column's receive function). The INSERT that
follows casts real[] to vector or halfvec.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Sequence
from numbers import Real
from typing import Any

from ..errors import ValidationError

__all__ = ["HALFVEC_MAX", "check", "check_for", "floats", "pack"]

HALFVEC_MAX = 65504.0
_FLT_MAX = 3.4028234663852886e38
_FLOAT4 = 700  # pg_type oid of real: the element type in the array header
_NATIVE = {float, int}
_ZERO = "is all zeros: a zero vector has no cosine distance"
_STRUCTS: dict[int, struct.Struct] = {}


def _struct(n: int) -> struct.Struct:
    s = _STRUCTS.get(n)
    if s is None:
        s = _STRUCTS[n] = struct.Struct(f">{n}f")
    return s


def _numpy(value: Any, dimension: int, field: str, half: bool, nonzero: bool) -> bytes:
    import numpy as np  # present whenever a numpy array is

    if value.ndim != 1:
        raise ValidationError("must be a flat (1-d) sequence of numbers", field=field)
    if value.dtype.kind not in ("f", "i", "u"):
        raise ValidationError(f"must hold numbers, not {value.dtype}", field=field)
    _size(value.shape[0], dimension, field)
    # float64 values beyond float4's range would become Infinity in the cast
    if (value.dtype.kind == "f" and value.dtype.itemsize > 4) and (
        not np.isfinite(value).all() or float(np.abs(value).max()) > _FLT_MAX
    ):
        raise ValidationError("holds NaN, Infinity or a value beyond float4's range", field=field)
    f4 = value.astype(">f4")
    if not np.isfinite(f4).all():
        raise ValidationError("holds NaN, Infinity or a value beyond float4's range", field=field)
    if half and float(np.abs(f4).max()) > HALFVEC_MAX:
        raise ValidationError(f"holds a value beyond halfvec's range (+-{HALFVEC_MAX:g})", field=field)
    if nonzero and not f4.any():
        raise ValidationError(_ZERO, field=field)
    return bytes(f4.tobytes())


def _size(n: int, dimension: int, field: str) -> None:
    if n == 0:
        raise ValidationError("is empty", field=field)
    if n != dimension:
        raise ValidationError(f"has {n} dimensions, the collection has {dimension}", field=field)


def check(
    value: Any, dimension: int, *, field: str = "embedding", half: bool = False, nonzero: bool = False
) -> bytes:
    """The vector as big-endian float4 bytes, or ValidationError (see the module docstring)."""
    if value is None or isinstance(value, str | bytes | bytearray | memoryview | Real):
        raise ValidationError("must be a sequence of numbers", field=field)
    if getattr(value, "dtype", None) is not None and hasattr(value, "ndim"):
        return _numpy(value, dimension, field, half, nonzero)
    if isinstance(value, array):
        if value.typecode not in "fdbBhHiIlLqQ":
            raise ValidationError("must hold numbers", field=field)
    elif not isinstance(value, Sequence):
        raise ValidationError("must be a sequence of numbers", field=field)
    _size(len(value), dimension, field)
    native = isinstance(value, array)
    if not native:
        kinds = set(map(type, value))
        native = kinds <= _NATIVE
        if not native:
            for kind in kinds:
                if kind is bool or not issubclass(kind, Real):
                    raise ValidationError(f"must hold numbers, not {kind.__name__}", field=field)
    try:
        # NaN and Inf make the sum non-finite; float4 overflow is refused by struct.
        ok = math.isfinite(sum(value) if native else math.fsum(value))
        raw = _struct(dimension).pack(*value)
    except (OverflowError, struct.error, TypeError, ValueError):
        ok = False
    if not ok:
        raise ValidationError("holds NaN, Infinity or a value beyond float4's range", field=field)
    if half and (max(value) > HALFVEC_MAX or min(value) < -HALFVEC_MAX):
        raise ValidationError(f"holds a value beyond halfvec's range (+-{HALFVEC_MAX:g})", field=field)
    if nonzero and not any(value):
        raise ValidationError(_ZERO, field=field)
    return raw


def floats(raw: bytes) -> list[float]:
    """The checked vector back as Python floats (float4 precision)."""
    out = array("f")
    out.frombytes(raw)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tolist()


def pack(raw: bytes) -> bytes:
    """Binary `real[]` (one dimension, no NULLs): the header, then per element its length
    (int32 4) and its big-endian float4 bytes."""
    n = len(raw) // 4
    body = bytearray(8 * n)
    body[3::8] = b"\x04" * n
    for k in range(4):
        body[4 + k :: 8] = raw[k::4]
    return struct.pack(">5i", 1, 0, _FLOAT4, n, 1) + bytes(body)


def check_for(value: Any, collection: Any, *, field: str = "embedding") -> bytes:
    """`check` with the collection's dimension, storage and distance."""
    return check(
        value,
        collection.dimension,
        field=field,
        half=collection.storage == "halfvec",
        nonzero=collection.distance == "cosine",
    )
