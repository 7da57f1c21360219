"""`POST /v1/traces`: OTLP/HTTP trace exports (docs/otel.md). An app instrumented with
OpenTelemetry points its exporter here (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=
http://127.0.0.1:8000/v1/traces`, an `ingest` key in `Authorization: Bearer ...`); its GenAI
spans become request-log rows, runs and iterations of the key's tenant.

Bodies: `application/json` or `application/x-protobuf`, optionally `Content-Encoding: gzip`.
The answer is an ExportTraceServiceResponse in the request's content type: empty when every
span was taken, `partialSuccess` with `rejectedSpans` and `errorMessage` when some GenAI
spans could not be stored (or a warning when spans without GenAI attributes were ignored).
A malformed export is refused whole with 400 and a reason in the error format; nothing of
it is written."""

from __future__ import annotations

import zlib
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...otel import OTLPError, decode, ingest
from ...otel.otlp_proto import encode_partial_success
from ..auth import Principal, require
from ..errors import error_body

__all__ = ["MAX_DECOMPRESSED", "router"]

router = APIRouter(prefix="/v1", tags=["opentelemetry"])

#: The most bytes a gzip body may expand to (app.state.otlp_max_bytes overrides it).
MAX_DECOMPRESSED = 64 * 1024 * 1024
_JSON = "application/json"
_PROTO = "application/x-protobuf"

_ERROR = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": ["string", "null"]},
                    },
                }
            },
        }
    }
}
_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportTraceServiceRequest (OTLP/JSON or protobuf; gzip allowed).",
        "content": {
            _JSON: {"schema": {"type": "object"}},
            _PROTO: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "200": {
            "description": "An ExportTraceServiceResponse (partial success when spans were rejected).",
            "content": {
                _JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "partialSuccess": {
                                "type": "object",
                                "properties": {
                                    "rejectedSpans": {"type": "integer"},
                                    "errorMessage": {"type": "string"},
                                },
                            }
                        },
                    }
                },
                _PROTO: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **{
            code: {"description": text, "content": _ERROR}
            for code, text in (
                ("400", "A malformed export (the reason is in error.message); nothing was written."),
                ("401", "Missing or invalid API key."),
                ("403", "The key lacks the ingest scope."),
                ("413", "The body is over the server's limit."),
                ("415", "Not application/json or application/x-protobuf, or an unknown encoding."),
            )
        },
    },
}


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise OTLPError(f"the gzip body expands to more than {limit} bytes")
        out += d.flush()
    except zlib.error as exc:
        raise OTLPError(f"the body is not valid gzip: {exc}") from None
    if not d.eof:
        raise OTLPError("the gzip body is truncated")
    if len(out) > limit:
        raise OTLPError(f"the gzip body expands to more than {limit} bytes")
    return out


@router.post(
    "/traces",
    response_class=Response,
    openapi_extra=_OPENAPI,
    summary="OTLP/HTTP trace export: GenAI spans into the request log, runs and iterations",
)
async def export_traces(request: Request, principal: Principal = require("ingest")) -> Response:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in (_JSON, _PROTO, "application/protobuf"):
        return _refuse(415, "unsupported_media_type", "send application/json or application/x-protobuf")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        return _refuse(415, "unsupported_media_type", f"unsupported Content-Encoding {encoding!r}; use gzip")
    body = await request.body()
    limit = int(getattr(request.app.state, "otlp_max_bytes", MAX_DECOMPRESSED))
    try:
        if encoding == "gzip":
            body = await run_in_threadpool(_gunzip, body, limit)
        spans = await run_in_threadpool(decode, body, media)
    except OTLPError as exc:
        return _refuse(400, "invalid_otlp", exc.reason)
    result = await run_in_threadpool(ingest, principal.client, spans)
    message = result.message()
    if media == _JSON:
        payload: dict[str, Any] = {}
        if result.rejected or message:
            payload["partialSuccess"] = {"rejectedSpans": result.rejected, "errorMessage": message}
        return JSONResponse(payload)
    return Response(encode_partial_success(result.rejected, message), media_type=_PROTO)
