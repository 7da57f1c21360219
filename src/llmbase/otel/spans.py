"""The decoded form of an OTLP trace export: one `Span` per span, with its resource's
attributes and its instrumentation scope, attribute values as plain Python values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_DEPTH", "Event", "OTLPError", "Span", "decode"]

#: Nesting of array / kvlist attribute values accepted before the export is refused.
MAX_DEPTH = 32

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


class OTLPError(ValueError):
    """A malformed export (HTTP 400); `reason` says what and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Event:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Span:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    status_code: int = STATUS_UNSET
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    scope_version: str = ""

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6


def decode(body: bytes, content_type: str) -> list[Span]:
    """The spans of an ExportTraceServiceRequest in `content_type` ("application/json" or
    "application/x-protobuf"). Raises OTLPError for a malformed body, ValueError for an
    unsupported content type."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        from .otlp_json import decode_json

        return decode_json(body)
    if media in ("application/x-protobuf", "application/protobuf"):
        from .otlp_proto import decode_proto

        return decode_proto(body)
    raise ValueError(media)
