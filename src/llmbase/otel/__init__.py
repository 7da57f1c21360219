"""OpenTelemetry ingestion: OTLP/HTTP trace exports (JSON or protobuf) decoded into spans,
and GenAI spans (`gen_ai.*` semantic conventions, OpenInference attributes) mapped into
request-log records, runs, iterations and tool calls (docs/otel.md).

    spans = decode(body, content_type)          # OTLPError (a reason) on a malformed export
    result = ingest(client, spans)              # enqueued through client.requests.log()
"""

from __future__ import annotations

from .ingest import Result, ingest, plan
from .spans import OTLPError, Span, decode

__all__ = ["OTLPError", "Result", "Span", "decode", "ingest", "plan"]
