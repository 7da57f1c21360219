"""The PostgreSQL sink: one transaction per batch, in operator scope, on its own connection.

Per batch: resolve tenant slugs and external user ids (one upsert per tenant, cached),
upsert runs and iterations (MERGE: later payloads fill in), insert tool calls, then the
requests: make sure the UTC days' partitions exist (cached), binary COPY into a temporary
staging table (created once per connection, ON COMMIT DELETE ROWS), then

    INSERT INTO llmbase.requests SELECT ... FROM staging ON CONFLICT DO NOTHING RETURNING ...

and, from the rows that INSERT actually returned (so a replay never counts twice), the
hourly and daily rollup deltas (llmbase.histogram for the latency histogram, merged with
llmbase.hist_add), per user into llmbase.request_rollups and summed over users into
llmbase.request_rollups_tenant, and the users' activity (llmbase.bump_user_activity). Commit.

Fast path: a batch of fresh records (straight from `log()`, never spooled: they cannot be
stored yet, their UUIDv7 ids are new) is COPYed straight into llmbase.requests inside a
savepoint, which uses PostgreSQL's multi-row insert and skips the staging round. Should an
id exist after all (an id given by the caller twice), the unique violation rolls the
savepoint back and the batch takes the staging path above; so does every replayed batch.
A server that refuses COPY into a table with forced row-level security for this role
(only superusers and BYPASSRLS roles may) turns the fast path off for the connection.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg import errors as pgerr
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from ... import histogram
from ..records import REQUEST_COLUMNS, Record, encode
from .base import BatchResult, Sink, SinkRejected, SinkRetry, SinkUnavailable

__all__ = ["PostgresSink"]

_log = logging.getLogger("llmbase.ingest")

_ZERO = UUID(int=0)
_STAGE = "llmbase_stage_requests"
_COLS = [c for c, _ in REQUEST_COLUMNS]
_STAGE_TYPES = ["text" if t == "jsonb" else t for _, t in REQUEST_COLUMNS]
_JSON_COLS = {c for c, t in REQUEST_COLUMNS if t == "jsonb"}

_STAGE_DDL = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
    sql.Identifier(_STAGE),
    sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
        for c, t in zip(_COLS, _STAGE_TYPES, strict=True)
    ),
)
_COPY_STAGE = sql.SQL("COPY pg_temp.{} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
    sql.Identifier(_STAGE), sql.SQL(", ").join(map(sql.Identifier, _COLS))
)
_INSERT_REQUESTS = sql.SQL(
    "INSERT INTO llmbase.requests ({}) SELECT {} FROM pg_temp.{} ON CONFLICT DO NOTHING RETURNING tenant_id, id"
).format(
    sql.SQL(", ").join(map(sql.Identifier, _COLS)),
    sql.SQL(", ").join(
        sql.SQL("{}::jsonb").format(sql.Identifier(c)) if c in _JSON_COLS else sql.Identifier(c)
        for c in _COLS
    ),
    sql.Identifier(_STAGE),
)
_COPY_DIRECT = sql.SQL("COPY llmbase.requests ({}) FROM STDIN WITH (FORMAT BINARY)").format(
    sql.SQL(", ").join(map(sql.Identifier, _COLS))
)
_DIRECT_TYPES = [t for _, t in REQUEST_COLUMNS]
_ADMIN = "SELECT set_config('llmbase.admin', 'on', true)"
_SESSION = "SET statement_timeout = '120s'; SET lock_timeout = '30s'; SET idle_in_transaction_session_timeout = '300s'"
_ENSURE_DAYS = "SELECT llmbase.ensure_request_partitions(%s, %s)"
_TENANTS_BY_SLUG = "SELECT slug, id FROM llmbase.tenants WHERE slug = ANY(%s)"
_UPSERT_USERS = """
WITH input AS (SELECT DISTINCT unnest(%(refs)s::text[]) AS external_id),
ins AS (
    INSERT INTO llmbase.users (tenant_id, external_id)
    SELECT %(tenant)s, external_id FROM input
    ON CONFLICT (tenant_id, external_id) DO NOTHING
    RETURNING external_id, id
)
SELECT external_id, id FROM ins
UNION ALL
SELECT u.external_id, u.id FROM llmbase.users u JOIN input USING (external_id) WHERE u.tenant_id = %(tenant)s
"""
_USERS_BY_REF = "SELECT external_id, id FROM llmbase.users WHERE tenant_id = %s AND external_id = ANY(%s)"
# Additive merge of a delta into an existing rollup row: the same for both rollup levels.
_ROLLUP_MERGE = """
    requests = r.requests + EXCLUDED.requests,
    errors = r.errors + EXCLUDED.errors,
    tokens_prompt = r.tokens_prompt + EXCLUDED.tokens_prompt,
    tokens_completion = r.tokens_completion + EXCLUDED.tokens_completion,
    tokens_total = r.tokens_total + EXCLUDED.tokens_total,
    tokens_cached = r.tokens_cached + EXCLUDED.tokens_cached,
    tokens_reasoning = r.tokens_reasoning + EXCLUDED.tokens_reasoning,
    cost_usd = r.cost_usd + EXCLUDED.cost_usd,
    cost_unknown = r.cost_unknown + EXCLUDED.cost_unknown,
    cache_hits = r.cache_hits + EXCLUDED.cache_hits,
    cost_saved_usd = r.cost_saved_usd + EXCLUDED.cost_saved_usd,
    latency_count = r.latency_count + EXCLUDED.latency_count,
    latency_sum_ms = r.latency_sum_ms + EXCLUDED.latency_sum_ms,
    latency_max_ms = greatest(r.latency_max_ms, EXCLUDED.latency_max_ms),
    latency_hist = llmbase.hist_add(r.latency_hist, EXCLUDED.latency_hist),
    ttft_count = r.ttft_count + EXCLUDED.ttft_count,
    ttft_sum_ms = r.ttft_sum_ms + EXCLUDED.ttft_sum_ms
"""
_ROLLUP_COUNTERS = """
    requests, errors, tokens_prompt, tokens_completion, tokens_total, tokens_cached, tokens_reasoning,
    cost_usd, cost_unknown, cache_hits, cost_saved_usd,
    latency_count, latency_sum_ms, latency_max_ms, latency_hist, ttft_count, ttft_sum_ms)
"""
_UPSERT_ROLLUP = (
    "INSERT INTO llmbase.request_rollups AS r (\n"
    "    tenant_id, grain, bucket_start, user_id, model, provider, request_type,"
    + _ROLLUP_COUNTERS
    + "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,\n"
    "        %s::bigint[], %s, %s)\n"
    "ON CONFLICT (tenant_id, grain, bucket_start, user_id, model, provider, request_type) DO UPDATE SET"
    + _ROLLUP_MERGE
)
# The same deltas summed over users, into the tenant-level rollups (same transaction).
_UPSERT_TENANT_ROLLUP = (
    "INSERT INTO llmbase.request_rollups_tenant AS r (\n"
    "    tenant_id, grain, bucket_start, model, provider, request_type,"
    + _ROLLUP_COUNTERS
    + "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,\n"
    "        %s::bigint[], %s, %s)\n"
    "ON CONFLICT (tenant_id, grain, bucket_start, model, provider, request_type) DO UPDATE SET"
    + _ROLLUP_MERGE
)
_BUMP = "SELECT llmbase.bump_user_activity(%s, %s, 0, 0, %s, %s, %s, 0, %s)"

_MERGE_RUNS = """
MERGE INTO llmbase.runs AS r
USING (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS s(
    tenant_id uuid, id uuid, user_id uuid, conversation_id uuid, name text, status text, error text,
    started_at timestamptz, ended_at timestamptz, total_ms float8, iteration_count int, api_ms float8,
    tool_ms float8, metadata text)) AS s
ON r.tenant_id = s.tenant_id AND r.id = s.id
WHEN MATCHED THEN UPDATE SET
    user_id = coalesce(s.user_id, r.user_id),
    conversation_id = coalesce(s.conversation_id, r.conversation_id),
    name = coalesce(s.name, r.name),
    status = CASE WHEN s.status IS NULL OR (s.status = 'running' AND r.status <> 'running')
                  THEN r.status ELSE s.status END,
    error = coalesce(s.error, r.error),
    started_at = coalesce(s.started_at, r.started_at),
    ended_at = coalesce(s.ended_at, r.ended_at),
    total_ms = coalesce(s.total_ms, r.total_ms),
    iteration_count = coalesce(s.iteration_count, r.iteration_count),
    api_ms = coalesce(s.api_ms, r.api_ms),
    tool_ms = coalesce(s.tool_ms, r.tool_ms),
    metadata = r.metadata || coalesce(s.metadata::jsonb, '{}')
WHEN NOT MATCHED THEN INSERT (tenant_id, id, user_id, conversation_id, name, status, error, started_at,
    ended_at, total_ms, iteration_count, api_ms, tool_ms, metadata)
VALUES (s.tenant_id, s.id, s.user_id, s.conversation_id, s.name, coalesce(s.status, 'running'), s.error,
    coalesce(s.started_at, now()), s.ended_at, s.total_ms, coalesce(s.iteration_count, 0),
    coalesce(s.api_ms, 0), coalesce(s.tool_ms, 0), coalesce(s.metadata::jsonb, '{}'))
"""
_COMPLETE_CONVERSATIONS = """
UPDATE llmbase.conversations c
   SET completed_at = r.ended_at,
       total_time_ms = round(r.total_ms)::bigint,
       total_iterations = r.iteration_count
  FROM llmbase.runs r
 WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest(%s::uuid[], %s::uuid[]))
   AND r.conversation_id IS NOT NULL AND r.ended_at IS NOT NULL
   AND c.tenant_id = r.tenant_id AND c.id = r.conversation_id
"""
_MERGE_ITERATIONS = """
MERGE INTO llmbase.run_iterations AS r
USING (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS s(
    tenant_id uuid, run_id uuid, iteration int, started_at timestamptz, ended_at timestamptz,
    total_ms float8, api_ms float8, tool_ms float8, api_calls int, tool_calls int, message_id uuid,
    metadata text)) AS s
ON r.tenant_id = s.tenant_id AND r.run_id = s.run_id AND r.iteration = s.iteration
WHEN MATCHED THEN UPDATE SET
    started_at = coalesce(s.started_at, r.started_at),
    ended_at = coalesce(s.ended_at, r.ended_at),
    total_ms = coalesce(s.total_ms, r.total_ms),
    api_ms = coalesce(s.api_ms, r.api_ms),
    tool_ms = coalesce(s.tool_ms, r.tool_ms),
    api_calls = coalesce(s.api_calls, r.api_calls),
    tool_calls = coalesce(s.tool_calls, r.tool_calls),
    message_id = coalesce(s.message_id, r.message_id),
    metadata = r.metadata || coalesce(s.metadata::jsonb, '{}')
WHEN NOT MATCHED THEN INSERT (tenant_id, run_id, iteration, started_at, ended_at, total_ms, api_ms,
    tool_ms, api_calls, tool_calls, message_id, metadata)
VALUES (s.tenant_id, s.run_id, s.iteration, coalesce(s.started_at, now()), s.ended_at, s.total_ms,
    coalesce(s.api_ms, 0), coalesce(s.tool_ms, 0), coalesce(s.api_calls, 0), coalesce(s.tool_calls, 0),
    s.message_id, coalesce(s.metadata::jsonb, '{}'))
"""
_INSERT_TOOLS = """
INSERT INTO llmbase.run_tool_calls (tenant_id, id, run_id, iteration, name, started_at, duration_ms,
    status, error, metadata)
SELECT tenant_id, id, run_id, iteration, name, started_at, duration_ms, coalesce(status, 'success'),
    error, coalesce(metadata::jsonb, '{}')
  FROM jsonb_to_recordset(%s::jsonb) AS s(
    tenant_id uuid, id uuid, run_id uuid, iteration int, name text, started_at timestamptz,
    duration_ms float8, status text, error text, metadata text)
ON CONFLICT (tenant_id, id) DO NOTHING
"""
_DEAD_LETTER = """
INSERT INTO llmbase.ingest_dead_letters AS d (tenant_id, id, kind, payload, error, attempts, first_failed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    payload = EXCLUDED.payload, error = EXCLUDED.error,
    attempts = greatest(d.attempts, EXCLUDED.attempts), last_failed_at = now()
"""

#: SQLSTATEs meaning "try the same batch again soon".
_RETRY_STATES = {"40001", "40P01", "55P03", "57014"}
#: SQLSTATEs meaning "the schema is not there (yet)": wait and retry like an outage.
_NOT_READY_STATES = {"42P01", "42883", "3F000", "42703", "42704"}
_USER_CACHE = 100_000


def _json_default(v: Any) -> Any:
    if isinstance(v, UUID | Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    raise TypeError(type(v).__name__)


class _Acc:
    """One rollup row's deltas."""

    __slots__ = (
        "cache_hits",
        "cost",
        "cost_saved",
        "cost_unknown",
        "errors",
        "hist",
        "lat_count",
        "lat_max",
        "lat_sum",
        "requests",
        "tokens",
        "ttft_count",
        "ttft_sum",
    )

    def __init__(self) -> None:
        self.requests = self.errors = self.cost_unknown = self.cache_hits = 0
        self.tokens = [0, 0, 0, 0, 0]
        self.cost = Decimal(0)
        self.cost_saved = Decimal(0)
        self.lat_count = 0
        self.lat_sum = 0.0
        self.lat_max = 0.0
        self.hist: list[int] = []
        self.ttft_count = 0
        self.ttft_sum = 0.0

    def add_row(self, row: dict[str, Any]) -> None:
        self.requests += 1
        if row["status"] != "success":
            self.errors += 1
        t = self.tokens
        for i, c in enumerate(
            ("tokens_prompt", "tokens_completion", "tokens_total", "tokens_cached", "tokens_reasoning")
        ):
            v = row.get(c)
            if v is not None:
                t[i] += v
        cost = row.get("cost_usd")
        if cost is not None:
            self.cost += cost
        saved = row.get("cost_saved_usd")
        if saved is not None:
            self.cost_saved += saved
        if row["cost_unknown"]:
            self.cost_unknown += 1
        if row["cache_hit"]:
            self.cache_hits += 1
        lat = row.get("latency_ms")
        if lat is not None:
            self.lat_count += 1
            self.lat_sum += lat
            if lat > self.lat_max:
                self.lat_max = lat
            i = histogram.bucket(lat)
            h = self.hist
            if i >= len(h):
                h.extend([0] * (i + 1 - len(h)))
            h[i] += 1
        ttft = row.get("ttft_ms")
        if ttft is not None:
            self.ttft_count += 1
            self.ttft_sum += ttft

    def merge(self, o: _Acc) -> None:
        self.requests += o.requests
        self.errors += o.errors
        self.tokens = [a + b for a, b in zip(self.tokens, o.tokens, strict=True)]
        self.cost += o.cost
        self.cost_saved += o.cost_saved
        self.cost_unknown += o.cost_unknown
        self.cache_hits += o.cache_hits
        self.lat_count += o.lat_count
        self.lat_sum += o.lat_sum
        self.lat_max = max(self.lat_max, o.lat_max)
        self.hist = histogram.add(self.hist, o.hist)
        self.ttft_count += o.ttft_count
        self.ttft_sum += o.ttft_sum

    def params(self) -> tuple[Any, ...]:
        return (
            self.requests,
            self.errors,
            *self.tokens,
            self.cost,
            self.cost_unknown,
            self.cache_hits,
            self.cost_saved,
            self.lat_count,
            self.lat_sum,
            self.lat_max,
            self.hist,
            self.ttft_count,
            self.ttft_sum,
        )


RollupKey = tuple[UUID, str, datetime, UUID, str, str, str]


def rollup_deltas(rows: Sequence[tuple[UUID, dict[str, Any]]]) -> dict[RollupKey, _Acc]:
    """Hourly and daily deltas of (tenant, normalised request row) pairs."""
    hours: dict[RollupKey, _Acc] = {}
    for tenant, row in rows:
        start = row["created_at"].replace(minute=0, second=0, microsecond=0)
        key = (
            tenant,
            "hour",
            start,
            row.get("user_id") or _ZERO,
            row.get("model") or "",
            row.get("provider") or "",
            row["request_type"],
        )
        acc = hours.get(key)
        if acc is None:
            acc = hours[key] = _Acc()
        acc.add_row(row)
    out = dict(hours)
    for (tenant, _, start, user, model, provider, rtype), acc in hours.items():
        key = (tenant, "day", start.replace(hour=0), user, model, provider, rtype)
        day = out.get(key)
        if day is None:
            day = out[key] = _Acc()
        day.merge(acc)
    return out


TenantKey = tuple[UUID, str, datetime, str, str, str]


def tenant_deltas(deltas: dict[RollupKey, _Acc]) -> dict[TenantKey, _Acc]:
    """The per-user deltas summed over users (histograms merged with llmbase.histogram.add)."""
    out: dict[TenantKey, _Acc] = {}
    for (tenant, grain, start, _user, model, provider, rtype), acc in deltas.items():
        key = (tenant, grain, start, model, provider, rtype)
        t = out.get(key)
        if t is None:
            t = out[key] = _Acc()
        t.merge(acc)
    return out


class _JsonText:
    """Marker type for the dumper below (values are plain str)."""


class _JsonbTextDumper(Dumper):
    """jsonb in binary COPY from JSON text we serialised already (version byte + text)."""

    format = Format.BINARY
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        text: str = obj
        return b"\x01" + text.encode()


class PostgresSink(Sink):
    """Writes batches into the llmbase schema over one owner connection."""

    def __init__(self, url: Callable[[], str]) -> None:
        self._url = url
        self.fast_path = True
        self._pricer: Any = None  # llmbase.pricing.Pricer, loaded on first use (False: unavailable)
        self._cost_of: Any = None
        self._conn: psycopg.Connection[Any] | None = None
        self._days: set[date] = set()
        self._slugs: dict[str, UUID] = {}
        self._users: OrderedDict[tuple[UUID, str], UUID] = OrderedDict()

    # -- connection ----------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self.close()
        try:
            url = self._url()
            conn = psycopg.connect(
                url, autocommit=True, connect_timeout=10, application_name="llmbase-writer"
            )
        except Exception as exc:
            raise SinkUnavailable(f"cannot connect: {exc}") from exc
        conn.adapters.register_dumper(_JsonText, _JsonbTextDumper)
        try:
            conn.execute(_SESSION)
            conn.execute(_STAGE_DDL)
        except psycopg.Error as exc:
            conn.close()
            raise self._classify(exc, conn) from exc
        self._conn = conn
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection may fail to say goodbye
                _log.debug("closing the writer connection failed", exc_info=True)

    def abandon(self) -> None:
        """After fork: forget the parent's connection without touching its socket."""
        if self._conn is not None:
            _ABANDONED.append(self._conn)
        self._conn = None

    def _classify(self, exc: BaseException, conn: psycopg.Connection[Any] | None) -> Exception:
        state = getattr(exc, "sqlstate", None) or ""
        msg = f"{type(exc).__name__}: {exc}".strip()
        if conn is not None and (conn.closed or conn.broken):
            return SinkUnavailable(msg)
        if isinstance(exc, psycopg.InterfaceError):
            return SinkUnavailable(msg)
        if isinstance(exc, psycopg.OperationalError) and (
            not state or state.startswith(("08", "53", "57P")) or state == "55000"
        ):
            return SinkUnavailable(msg)
        if state in _RETRY_STATES:
            return SinkRetry(msg)
        if state in _NOT_READY_STATES:
            return SinkUnavailable(f"schema not ready: {msg}")
        if state == "23514" and "partition" in str(exc):
            self._days.clear()  # retention dropped a partition we thought was there
            return SinkRetry(msg)
        return SinkRejected(msg)

    # -- batches ------------------------------------------------------------------------------------
    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        conn = self._connect()
        result = BatchResult()
        new_days: set[date] = set()
        new_users: dict[tuple[UUID, str], UUID] = {}
        try:
            with conn.transaction():
                conn.execute(_ADMIN)
                todo = self._resolve_tenants(conn, records, result)
                users = self._resolve_users(conn, todo, new_users)
                runs = [(t, r) for t, r in todo if r.kind == "run"]
                iterations = [(t, r) for t, r in todo if r.kind == "iteration"]
                tools = [(t, r) for t, r in todo if r.kind == "tool_call"]
                requests = [(t, r) for t, r in todo if r.kind == "request"]
                if runs:
                    self._runs(conn, runs, users)
                if iterations:
                    self._jsonset(conn, _MERGE_ITERATIONS, iterations, key=("run_id", "iteration"))
                if tools:
                    self._jsonset(conn, _INSERT_TOOLS, tools, key=None)
                if requests:
                    result.duplicates = self._requests(conn, requests, users, new_days)
        except (SinkRejected, SinkRetry, SinkUnavailable):
            raise
        except psycopg.Error as exc:
            raise self._classify(exc, conn) from exc
        except Exception as exc:  # a value psycopg could not send: isolate it like a refusal
            if conn.closed or conn.broken:
                raise SinkUnavailable(str(exc)) from exc
            raise SinkRejected(f"{type(exc).__name__}: {exc}") from exc
        self._days |= new_days
        for k, v in new_users.items():
            self._users[k] = v
        while len(self._users) > _USER_CACHE:
            self._users.popitem(last=False)
        result.written = len(records) - len(result.rejected)
        return result

    def _resolve_tenants(
        self, conn: psycopg.Connection[Any], records: Sequence[Record], result: BatchResult
    ) -> list[tuple[UUID, Record]]:
        slugs = {r.tenant for r in records if isinstance(r.tenant, str)} - set(self._slugs)
        if slugs:
            for slug, tid in conn.execute(_TENANTS_BY_SLUG, (sorted(slugs),)).fetchall():
                self._slugs[slug] = tid
        out: list[tuple[UUID, Record]] = []
        for r in records:
            t = r.tenant
            if isinstance(t, str):
                tid = self._slugs.get(t)
                if tid is None:
                    result.rejected.append((r, f"unknown tenant {t!r}"))
                    continue
                t = tid
            out.append((t, r))
        return out

    def _resolve_users(
        self,
        conn: psycopg.Connection[Any],
        todo: Sequence[tuple[UUID, Record]],
        new: dict[tuple[UUID, str], UUID],
    ) -> dict[tuple[UUID, str], UUID]:
        wanted: dict[UUID, set[str]] = {}
        found: dict[tuple[UUID, str], UUID] = {}
        for t, r in todo:
            if not r.may_need_user():
                continue
            ref = r.user_ref
            if ref is None or "user_id" in r.row:
                continue
            hit = self._users.get((t, ref))
            if hit is not None:
                found[(t, ref)] = hit
            else:
                wanted.setdefault(t, set()).add(ref)
        for t in sorted(wanted):
            refs = sorted(wanted[t])
            rows = conn.execute(_UPSERT_USERS, {"refs": refs, "tenant": t}).fetchall()
            got = {ref: uid for ref, uid in rows}
            missing = [ref for ref in refs if ref not in got]
            if missing:  # created concurrently by another writer: visible to a new statement
                got.update(dict(conn.execute(_USERS_BY_REF, (t, missing)).fetchall()))
            for ref, uid in got.items():
                found[(t, ref)] = new[(t, ref)] = uid
        return found

    @staticmethod
    def _user_of(t: UUID, r: Record, users: dict[tuple[UUID, str], UUID]) -> UUID | None:
        uid = r.row.get("user_id")
        if uid is None and r.user_ref is not None:
            uid = users.get((t, r.user_ref))
        return uid

    # -- runs, iterations, tool calls ---------------------------------------------------------------
    def _runs(
        self,
        conn: psycopg.Connection[Any],
        runs: Sequence[tuple[UUID, Record]],
        users: dict[tuple[UUID, str], UUID],
    ) -> None:
        merged: dict[tuple[UUID, UUID], dict[str, Any]] = {}
        for t, r in runs:  # later payloads fill in and override (MERGE takes one row per run)
            row = dict(r.row)
            uid = self._user_of(t, r, users)
            if uid is not None:
                row["user_id"] = uid
            prev = merged.get((t, row["id"]))
            if prev is None:
                merged[(t, row["id"])] = {"tenant_id": t, **row}
            else:
                if "metadata" in row and "metadata" in prev:
                    row["metadata"] = json.dumps(
                        {**json.loads(prev["metadata"]), **json.loads(row["metadata"])}, ensure_ascii=False
                    )
                if prev.get("status") not in (None, "running") and row.get("status") == "running":
                    row.pop("status")
                prev.update(row)
        docs = list(merged.values())
        conn.execute(_MERGE_RUNS, (json.dumps(docs, default=_json_default, ensure_ascii=False),))
        ended = [(d["tenant_id"], d["id"]) for d in docs if d.get("ended_at") is not None]
        if ended:
            conn.execute(_COMPLETE_CONVERSATIONS, ([t for t, _ in ended], [i for _, i in ended]))

    @staticmethod
    def _jsonset(
        conn: psycopg.Connection[Any],
        stmt: LiteralString,
        items: Sequence[tuple[UUID, Record]],
        *,
        key: tuple[str, ...] | None,
    ) -> None:
        docs: dict[Any, dict[str, Any]] = {}
        for n, (t, r) in enumerate(items):
            k = (t, *(r.row.get(c) for c in key)) if key else n
            prev = docs.get(k)
            if prev is None:
                docs[k] = {"tenant_id": t, **r.row}
            else:
                prev.update(r.row)
        conn.execute(stmt, (json.dumps(list(docs.values()), default=_json_default, ensure_ascii=False),))

    # -- requests -------------------------------------------------------------------------------------
    def _ensure_days(self, conn: psycopg.Connection[Any], days: set[date], new: set[date]) -> None:
        for d in sorted(days - self._days - new):
            conn.execute(_ENSURE_DAYS, (d, d + timedelta(days=1)))
            new.update((d, d + timedelta(days=1)))

    def _requests(
        self,
        conn: psycopg.Connection[Any],
        requests: Sequence[tuple[UUID, Record]],
        users: dict[tuple[UUID, str], UUID],
        new_days: set[date],
    ) -> int:
        items: dict[tuple[UUID, UUID], tuple[UUID, Record]] = {}
        days: set[date] = set()
        for t, r in requests:
            key = r.peek()  # (id, created_at) without normalising, when log() set them
            rid, at = key if key is not None else (r.row["id"], r.row["created_at"])
            if (t, rid) in items:
                continue  # the same record twice in one batch (a replay): the first wins
            items[(t, rid)] = (t, r)
            days.add(at.date())
        self._ensure_days(conn, days, new_days)
        prices = self._overrides(conn, {t for t, _ in items.values()})
        if self.fast_path and all(r.fresh for _, r in items.values()):
            try:
                with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_DIRECT) as cp:
                    cp.set_types(_DIRECT_TYPES)
                    written = self._stream(cp, items.values(), users, prices)
            except pgerr.UniqueViolation:
                pass  # an id stored before: take the idempotent path below
            except pgerr.FeatureNotSupported:
                _log.info("COPY into llmbase.requests refused for this role; using INSERT from staging")
                self.fast_path = False
            else:
                self._rollups(conn, written)
                self._profiles(conn, written)
                return len(requests) - len(written)
        with conn.cursor() as cur:
            with cur.copy(_COPY_STAGE) as cp:
                cp.set_types(_STAGE_TYPES)
                staged = self._stream(cp, items.values(), users, prices)
            inserted = {(t, i) for t, i in cur.execute(_INSERT_REQUESTS).fetchall()}
        fresh = [(t, row) for t, row in staged if (t, row["id"]) in inserted]
        if fresh:
            self._rollups(conn, fresh)
            self._profiles(conn, fresh)
        return len(requests) - len(fresh)

    def _stream(
        self,
        cp: psycopg.Copy,
        items: Iterable[tuple[UUID, Record]],
        users: dict[tuple[UUID, str], UUID],
        prices: dict[UUID, Any] | None,
    ) -> list[tuple[UUID, dict[str, Any]]]:
        """COPY the rows, normalising (and pricing) each as it goes: the server stores the
        rows already sent meanwhile. Returns (tenant, row as stored)."""
        cols = _COLS[1:]
        out: list[tuple[UUID, dict[str, Any]]] = []
        for t, r in items:
            row = r.row
            if prices is not None and row.get("cost_usd") is None:
                self._price_row(t, row, prices)
            if row.get("user_id") is None and r.user_ref is not None:
                uid = users.get((t, r.user_ref))
                if uid is not None:  # not into the record: its user may roll back with the batch
                    row = {**row, "user_id": uid}
            cp.write_row([t, *[row.get(c) for c in cols]])
            out.append((t, row))
        return out

    def _overrides(self, conn: psycopg.Connection[Any], tenants: set[UUID]) -> dict[UUID, Any] | None:
        """The tenants' price overrides (llmbase.pricing, cached 30 s), read before the COPY;
        None when pricing is unavailable."""
        if self._pricer is None:
            try:
                from ... import pricing
            except Exception:  # pricing unavailable (e.g. genai-prices missing): costs stay as logged
                _log.warning("llmbase: pricing is unavailable; costs stay as logged", exc_info=True)
                self._pricer = False
                return None
            self._pricer = pricing.Pricer(None)
            self._cost_of = pricing.cost_of
        if self._pricer is False:
            return None
        self._pricer.load(tenants, conn)
        return {t: self._pricer.overrides(t, conn) for t in tenants}

    def _price_row(self, t: UUID, row: dict[str, Any], prices: dict[UUID, Any]) -> None:
        """Cost of a call logged without one: tenant override, then the genai-prices catalog;
        unknown: NULL and cost_unknown. A pricing defect leaves the cost unset."""
        try:
            view = row
            md = row.get("metadata")
            if isinstance(md, str) and "cache_write_tokens" in md:
                view = {**row, "metadata": json.loads(md)}
            row.update(self._cost_of(view, prices.get(t)).fields())
        except Exception:
            _log.exception("llmbase: pricing a request failed; its cost stays unset")

    @staticmethod
    def _rollups(conn: psycopg.Connection[Any], fresh: Sequence[tuple[UUID, dict[str, Any]]]) -> None:
        deltas = rollup_deltas(fresh)
        params = [(*key, *deltas[key].params()) for key in sorted(deltas, key=_sort_key)]
        tenant = tenant_deltas(deltas)
        tparams = [(*key, *tenant[key].params()) for key in sorted(tenant, key=_sort_key)]
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_ROLLUP, params)
            cur.executemany(_UPSERT_TENANT_ROLLUP, tparams)

    @staticmethod
    def _profiles(conn: psycopg.Connection[Any], fresh: Sequence[tuple[UUID, dict[str, Any]]]) -> None:
        per: dict[tuple[UUID, UUID], list[Any]] = {}
        for t, row in fresh:
            uid = row.get("user_id")
            if uid is None:
                continue
            at = row["created_at"]
            p = per.get((t, uid))
            if p is None:
                per[(t, uid)] = [1, row.get("tokens_total") or 0, row.get("cost_usd") or Decimal(0), at, at]
            else:
                p[0] += 1
                p[1] += row.get("tokens_total") or 0
                p[2] += row.get("cost_usd") or Decimal(0)
                p[3] = min(p[3], at)
                p[4] = max(p[4], at)
        params: list[tuple[Any, ...]] = []
        for (t, uid), (n, tokens, cost, first, last) in sorted(
            per.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))
        ):
            params.append((t, uid, n, tokens, cost, first))
            if last != first:
                params.append((t, uid, 0, 0, Decimal(0), last))
        if params:
            with conn.cursor() as cur:
                cur.executemany(_BUMP, params)

    # -- dead letters ---------------------------------------------------------------------------------
    def dead_letter(self, records: Sequence[Record]) -> None:
        conn = self._connect()
        params = [
            (
                r.tenant if isinstance(r.tenant, UUID) else _ZERO,
                r.id,
                r.kind,
                encode(r).decode(),
                (r.invalid or r.error or "rejected")[:10_000],
                r.attempts,
                r.first_failed_at or datetime.now().astimezone(),
            )
            for r in records
        ]
        try:
            with conn.transaction():
                conn.execute(_ADMIN)
                with conn.cursor() as cur:
                    cur.executemany(_DEAD_LETTER, params)
        except psycopg.Error as exc:
            raise self._classify(exc, conn) from exc


def _sort_key(k: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(x) for x in k)


#: Connections inherited across fork: kept referenced so the child never closes the
#: parent's sockets (closing would end the parent's session).
_ABANDONED: list[psycopg.Connection[Any]] = []
