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
stored yet, their UUIDv7 ids are new) is COPYed straight into llmbase.requests, which uses
PostgreSQL's multi-row insert and skips the staging round. Should an id exist after all (an
id given by the caller twice), the unique violation rolls the transaction back and the whole
batch is applied again through the staging path above (no savepoint: two round trips less
per batch); so is every replayed batch. A server that refuses COPY into a table with forced
row-level security for this role (only superusers and BYPASSRLS roles may) turns the fast
path off for the connection.

The rows are COPYed as the records keep them (llmbase.ingest.records.Record.values: uuid,
jsonb and text[] values already in binary form, sent through bytea's C dumper), normalised
32 at a time (Record.prefetch), written to the socket by `_CopyWriter`, which does not wait
for a server that is behind but does the writer's idle work (`idle`: normalising the next
queued records) meanwhile, and while the server ends the COPY. The rollup deltas are summed
column by column from the rows as sent, before the COPY ends, and go to the server in one
statement.
"""

from __future__ import annotations

import itertools
import json
import logging
import select
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, LiteralString, cast
from uuid import UUID

import orjson
import psycopg
from psycopg import errors as pgerr
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.copy import LibpqWriter
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGresult
from psycopg.types.string import BytesBinaryDumper

from ... import histogram
from ..records import REQUEST_COLUMNS, REQUEST_INDEX, Record, encode
from ._retrievals import retrieval_row, write_retrievals
from .base import BatchResult, Sink, SinkRejected, SinkRetry, SinkUnavailable

__all__ = ["PostgresSink"]

_log = logging.getLogger("llmbase.ingest")

_ZERO = UUID(int=0)
_STAGE = "llmbase_stage_requests"
_COLS = [c for c, _ in REQUEST_COLUMNS]
_TYPES = [t for _, t in REQUEST_COLUMNS]
# What COPY's set_types() is told: binary COPY sends no type with a value, the types only
# pick the client's dumpers, and the uuid, jsonb and text[] values of a request's COPY row are
# in their binary format already (Record.values): bytea's C dumper passes them through.
_COPY_TYPES = ["bytea" if t in ("uuid", "jsonb", "text[]") else t for t in _TYPES]
_PREFETCH = 32  # requests normalised together (Record.prefetch) as the COPY goes
_BLOCK = 128 * 1024  # COPY data handed to libpq at once (psycopg's limit too)
_QUEUED = 16 << 20  # COPY data the writer may hold while the server is behind, before it waits

_STAGE_DDL = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
    sql.Identifier(_STAGE),
    sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(_COLS, _TYPES, strict=True)
    ),
)
_COPY_STAGE = sql.SQL("COPY pg_temp.{} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
    sql.Identifier(_STAGE), sql.SQL(", ").join(map(sql.Identifier, _COLS))
)
_INSERT_REQUESTS = sql.SQL(
    "INSERT INTO llmbase.requests ({}) SELECT {} FROM pg_temp.{} ON CONFLICT DO NOTHING RETURNING tenant_id, id"
).format(
    sql.SQL(", ").join(map(sql.Identifier, _COLS)),
    sql.SQL(", ").join(map(sql.Identifier, _COLS)),
    sql.Identifier(_STAGE),
)
_COPY_DIRECT = sql.SQL("COPY llmbase.requests ({}) FROM STDIN WITH (FORMAT BINARY)").format(
    sql.SQL(", ").join(map(sql.Identifier, _COLS))
)
# Positions in a request's COPY row (llmbase.ingest.records.Record.values).
_I = REQUEST_INDEX
_I_CREATED, _I_ID, _I_USER, _I_COST = _I["created_at"], _I["id"], _I["user_id"], _I["cost_usd"]
_I_MODEL, _I_PROVIDER, _I_TYPE = _I["model"], _I["provider"], _I["request_type"]
#: What llmbase.pricing.cost_of reads of a request (and metadata's cache_write_tokens).
_PRICE_FIELDS = (
    "model",
    "provider",
    "status",
    "tokens_prompt",
    "tokens_completion",
    "tokens_total",
    "tokens_cached",
    "audio_duration_s",
    "created_at",
)
#: The columns a rollup delta adds up, in _Acc.of's order.
_ROLLUP_COLUMNS = itemgetter(
    *(
        _I[c]
        for c in (
            "status",
            "tokens_prompt",
            "tokens_completion",
            "tokens_total",
            "tokens_cached",
            "tokens_reasoning",
            "cost_usd",
            "cost_unknown",
            "cache_hit",
            "cost_saved_usd",
            "latency_ms",
            "ttft_ms",
            "created_at",
        )
    )
)
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
    latency_count, latency_sum_ms, latency_max_ms, latency_hist, ttft_count, ttft_sum_ms"""
_COUNTER_TYPES = """
    requests bigint, errors bigint, tokens_prompt bigint, tokens_completion bigint, tokens_total bigint,
    tokens_cached bigint, tokens_reasoning bigint, cost_usd numeric, cost_unknown bigint,
    cache_hits bigint, cost_saved_usd numeric, latency_count bigint, latency_sum_ms float8,
    latency_max_ms float8, latency_hist bigint[], ttft_count bigint, ttft_sum_ms float8"""
#: Names of _Acc.params(), in order (the JSON keys of a delta).
_COUNTER_NAMES = tuple(c.strip() for c in _ROLLUP_COUNTERS.split(","))
# A batch's deltas in one statement (one round trip): the per-user rollups, the tenant-level
# rollups (the same summed over users) and the users' activity, each from a JSON array sorted by
# key (concurrent writers take the rows' locks in the same order).
_APPLY_DELTAS = sql.SQL("""
WITH u AS (
INSERT INTO llmbase.request_rollups AS r (
    tenant_id, grain, bucket_start, user_id, model, provider, request_type, {counters})
SELECT tenant_id, grain, bucket_start, user_id, model, provider, request_type, {counters}
  FROM jsonb_to_recordset(%(users)s::jsonb) AS s(tenant_id uuid, grain text, bucket_start timestamptz,
    user_id uuid, model text, provider text, request_type text, {types})
ON CONFLICT (tenant_id, grain, bucket_start, user_id, model, provider, request_type) DO UPDATE SET {merge}
), t AS (
INSERT INTO llmbase.request_rollups_tenant AS r (
    tenant_id, grain, bucket_start, model, provider, request_type, {counters})
SELECT tenant_id, grain, bucket_start, model, provider, request_type, {counters}
  FROM jsonb_to_recordset(%(tenants)s::jsonb) AS s(tenant_id uuid, grain text, bucket_start timestamptz,
    model text, provider text, request_type text, {types})
ON CONFLICT (tenant_id, grain, bucket_start, model, provider, request_type) DO UPDATE SET {merge}
)
SELECT llmbase.bump_user_activity(p.tenant_id, p.user_id, 0, 0, p.requests, p.tokens, p.cost, 0, p.at)
  FROM jsonb_to_recordset(%(profiles)s::jsonb)
    AS p(tenant_id uuid, user_id uuid, requests bigint, tokens bigint, cost numeric, at timestamptz)
""").format(counters=sql.SQL(_ROLLUP_COUNTERS), types=sql.SQL(_COUNTER_TYPES), merge=sql.SQL(_ROLLUP_MERGE))

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


def _nonnull(column: tuple[Any, ...]) -> list[Any]:
    return [x for x in column if x is not None]


def _histogram(values: list[float]) -> list[int]:
    """histogram.from_values, counting in C (collections.Counter) what histogram.bucket says."""
    counts = Counter(map(histogram.bucket, values))
    hist = [0] * (max(counts) + 1)
    for i, n in counts.items():
        hist[i] = n
    return hist


class _Acc:
    """One rollup row's deltas (and, for the users' activity, the first and last call)."""

    __slots__ = (
        "cache_hits",
        "cost",
        "cost_saved",
        "cost_unknown",
        "errors",
        "first",
        "hist",
        "last",
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
        self.first: datetime | None = None
        self.last: datetime | None = None

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]]) -> _Acc:
        """The deltas of request COPY rows, column by column (sums and counts in C)."""
        (status, prompt, completion, total, cached, reasoning, cost, unknown, hit, saved, lat, ttft, at) = (
            zip(*map(_ROLLUP_COLUMNS, rows), strict=True)
        )
        a = cls()
        a.requests = n = len(status)
        a.errors = n - status.count("success")
        a.tokens = [sum(filter(None, c)) for c in (prompt, completion, total, cached, reasoning)]
        a.cost = sum(filter(None, cost), Decimal(0))
        a.cost_saved = sum(filter(None, saved), Decimal(0))
        a.cost_unknown = unknown.count(True)
        a.cache_hits = hit.count(True)
        lats = _nonnull(lat)
        if lats:
            a.lat_count = len(lats)
            a.lat_sum = sum(lats, 0.0)
            top = max(lats)
            a.lat_max = top if top > 0.0 else 0.0
            a.hist = _histogram(lats)
        ttfts = _nonnull(ttft)
        if ttfts:
            a.ttft_count = len(ttfts)
            a.ttft_sum = sum(ttfts, 0.0)
        a.first, a.last = min(at), max(at)
        return a

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
        if o.first is not None and (self.first is None or o.first < self.first):
            self.first = o.first
        if o.last is not None and (self.last is None or o.last > self.last):
            self.last = o.last

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


def rollup_deltas(rows: Sequence[Sequence[Any]]) -> dict[RollupKey, _Acc]:
    """Hourly and daily deltas of request COPY rows (see Record.values)."""
    groups: dict[tuple[Any, ...], list[Sequence[Any]]] = {}
    for v in rows:  # by tenant, user, model, provider and type first (the hour: per group)
        key = _GROUP(v)
        group = groups.get(key)
        if group is None:
            groups[key] = [v]
        else:
            group.append(v)
    ids: dict[bytes | None, UUID] = {None: _ZERO}
    out: dict[RollupKey, _Acc] = {}
    days: dict[RollupKey, _Acc] = {}
    for (tb, ub, model, provider, rtype), group in groups.items():
        tenant = ids.get(tb) or ids.setdefault(tb, UUID(bytes=tb))
        user = ids.get(ub) or ids.setdefault(ub, UUID(bytes=ub))
        for start, rows_of_hour in _by_hour(group):
            acc = _Acc.of(rows_of_hour)
            out[(tenant, "hour", start, user, model or "", provider or "", rtype)] = acc
            dkey = (tenant, "day", start.replace(hour=0), user, model or "", provider or "", rtype)
            day = days.get(dkey)
            if day is None:
                day = days[dkey] = _Acc()
            day.merge(acc)
    out.update(days)
    return out


_GROUP = itemgetter(0, _I_USER, _I_MODEL, _I_PROVIDER, _I_TYPE)


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _by_hour(rows: list[Sequence[Any]]) -> list[tuple[datetime, list[Sequence[Any]]]]:
    """The rows by the UTC hour of created_at (one hour, most of the time)."""
    times = [v[_I_CREATED] for v in rows]
    first = _hour(min(times))
    if _hour(max(times)) == first:
        return [(first, rows)]
    hours: dict[datetime, list[Sequence[Any]]] = {}
    for v, at in zip(rows, times, strict=True):
        hours.setdefault(_hour(at), []).append(v)
    return list(hours.items())


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


class _CopyWriter(LibpqWriter):
    """psycopg's COPY writer, made to keep the writer busy while the server is behind.

    psycopg hands every block to libpq, which keeps what the socket does not take and moves
    it to the front of its buffer on every later send (up to a MiB copied per 32 KiB sent,
    with the GIL held), and every MiB it waits until the socket took all of it. Here blocks
    the socket cannot take yet wait in a queue of our own (libpq never holds more than one),
    and the writer goes on normalising the next rows instead of waiting; it waits only when
    _QUEUED bytes are queued, and at the end of the COPY (where the server has to be done
    anyway)."""

    def __init__(self, cursor: psycopg.Cursor[Any], idle: Callable[[], bool] | None = None) -> None:
        super().__init__(cursor)
        self._queue: deque[Buffer] = deque()
        self._queued = 0
        self._idle = idle

    def write(self, data: Buffer) -> None:
        for i in range(0, len(data), _BLOCK):
            block = data[i : i + _BLOCK] if len(data) > _BLOCK else data
            self._queue.append(block)
            self._queued += len(block)
        self._push(wait=self._queued > _QUEUED)

    def _push(self, *, wait: bool) -> None:
        """Hand queued blocks to libpq while the socket takes them (all of them: `wait`)."""
        pgconn = self.connection.pgconn
        queue = self._queue
        while queue:
            if pgconn.flush() == 1:  # libpq still holds data: the socket is full
                if not wait:
                    return
                _wait_writable(pgconn.socket)
                continue
            block = queue.popleft()
            self._queued -= len(block)
            while pgconn.put_copy_data(block) == 0:
                _wait_writable(pgconn.socket)

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            self._queue.clear()
            super().finish(exc)
            return
        idle = self._idle
        while self._queue:  # the server is behind: do the idle work while it catches up
            self._push(wait=False)
            if self._queue and (idle is None or not idle()):
                self._push(wait=True)
        # End the COPY as psycopg does (LibpqWriter.finish), but do the idle work while the
        # server finishes storing the rows (some milliseconds per batch) instead of waiting.
        pgconn = self.connection.pgconn
        while pgconn.put_copy_end(None) == 0:
            _wait_writable(pgconn.socket)
        while pgconn.flush() == 1:
            _wait_writable(pgconn.socket)
        while idle is not None:
            pgconn.consume_input()
            if not pgconn.is_busy() or not idle():
                break
        results: list[PGresult] = []
        while True:
            while pgconn.is_busy():
                _wait_readable(pgconn.socket)
                pgconn.consume_input()
            res = pgconn.get_result()
            if res is None:
                break
            results.append(res)
        for res in results:
            if res.status != ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(res, encoding=self.connection.info.encoding)


def _wait_writable(fd: int) -> None:
    """Until the socket takes data (the GIL is released meanwhile), at most a second."""
    if _poll is None:
        select.select([], [fd], [fd], 1.0)
    else:
        p = _poll()
        p.register(fd, select.POLLOUT)
        p.poll(1000)


def _wait_readable(fd: int) -> None:
    """Until the server sent something (the GIL is released meanwhile), at most a second."""
    if _poll is None:
        select.select([fd], [], [fd], 1.0)
    else:
        p = _poll()
        p.register(fd, select.POLLIN)
        p.poll(1000)


_poll = getattr(select, "poll", None)  # not on Windows, where select has no descriptor limit


# How a batch's requests go in: COPY straight into llmbase.requests, for the partitions of
# yesterday to tomorrow; the same, the days looked up first; through the staging table.
_DIRECT, _DIRECT_DAYS, _STAGING = range(3)


class _Again(Exception):
    """The batch was rolled back: apply it again in `mode` (a row outside the days the direct
    COPY was ready for; a stored id met by the direct COPY, or COPY not allowed)."""

    def __init__(self, mode: int) -> None:
        super().__init__(mode)
        self.mode = mode


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _tenants(records: Sequence[Record]) -> set[UUID]:
    """The distinct tenants of requests (whose slugs are resolved), hashing each once."""
    out: set[UUID] = set()
    last = None
    for r in records:
        if r.tenant is not last:
            last = r.tenant
            out.add(_tenant(r))
    return out


def _tenant(r: Record) -> UUID:
    """A request's tenant once `_resolve_tenants` replaced its slug."""
    return cast("UUID", r.tenant)


class PostgresSink(Sink):
    """Writes batches into the llmbase schema over one owner connection."""

    def __init__(self, url: Callable[[], str], *, idle: Callable[[], bool] | None = None) -> None:
        self._url = url
        # Work to do while the server stores the last rows of a COPY (the writer normalises
        # the next records); False: nothing (more) now.
        self._idle = idle
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
        # bytea's dumper for COPY's set_types (by default the one of psycopg.Binary wrappers).
        conn.adapters.register_dumper(None, BytesBinaryDumper)
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
        mode = _DIRECT
        while True:
            try:
                return self._write_batch(records, mode)
            except _Again as again:  # rolled back: the batch once more, the way it says
                mode = again.mode

    def _write_batch(self, records: Sequence[Record], mode: int) -> BatchResult:
        conn = self._connect()
        result = BatchResult()
        new_days: set[date] = set()
        new_users: dict[tuple[UUID, str], UUID] = {}
        try:
            with conn.transaction():
                conn.execute(_ADMIN)
                todo, requests = self._resolve_tenants(conn, records, result)
                users = self._resolve_users(conn, todo, requests, new_users)
                runs = [(t, r) for t, r in todo if r.kind == "run"]
                iterations = [(t, r) for t, r in todo if r.kind == "iteration"]
                tools = [(t, r) for t, r in todo if r.kind == "tool_call"]
                if runs:
                    self._runs(conn, runs, users)
                if iterations:
                    self._jsonset(conn, _MERGE_ITERATIONS, iterations, key=("run_id", "iteration"))
                if tools:
                    self._jsonset(conn, _INSERT_TOOLS, tools, key=None)
                retrievals = [retrieval_row(t, r.row) for t, r in todo if r.kind == "retrieval"]
                if retrievals:
                    write_retrievals(conn, retrievals)
                if requests:
                    result.duplicates = self._requests(conn, requests, users, new_days, mode)
        except (SinkRejected, SinkRetry, SinkUnavailable, _Again):
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
    ) -> tuple[list[tuple[UUID, Record]], list[Record]]:
        """(tenant, record) of the runs, iterations and tool calls, and the requests (their
        tenant slugs replaced by ids, so that a batch holds no pair per request)."""
        slugs = {r.tenant for r in records if isinstance(r.tenant, str)} - set(self._slugs)
        if slugs:
            for slug, tid in conn.execute(_TENANTS_BY_SLUG, (sorted(slugs),)).fetchall():
                self._slugs[slug] = tid
        todo: list[tuple[UUID, Record]] = []
        requests: list[Record] = []
        for r in records:
            t = r.tenant
            if isinstance(t, str):
                tid = self._slugs.get(t)
                if tid is None:
                    result.rejected.append((r, f"unknown tenant {t!r}"))
                    continue
                t = tid
                if r.kind == "request":
                    r.tenant = tid
            if r.kind == "request":
                requests.append(r)
            else:
                todo.append((t, r))
        return todo, requests

    def _resolve_users(
        self,
        conn: psycopg.Connection[Any],
        todo: Sequence[tuple[UUID, Record]],
        requests: Sequence[Record],
        new: dict[tuple[UUID, str], UUID],
    ) -> dict[tuple[UUID, str], UUID]:
        wanted: dict[UUID, set[str]] = {}
        found: dict[tuple[UUID, str], UUID] = {}
        for t, r in itertools.chain(todo, ((_tenant(r), r) for r in requests if r.may_need_user())):
            if not r.may_need_user():
                continue
            ref = r.user_ref  # normalises it: ask again
            if ref is None or not r.may_need_user():
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
        requests: Sequence[Record],
        users: dict[tuple[UUID, str], UUID],
        new_days: set[date],
        mode: int,
    ) -> int:
        limit = datetime.now(UTC) + timedelta(days=1)
        days: set[date] = set()
        # Fresh records (straight from log()) cannot be stored yet: COPY them straight in.
        direct = mode != _STAGING and self.fast_path and all(r.fresh for r in requests)
        items: Sequence[Record] = requests
        window: tuple[datetime, datetime] | None = None
        if not direct:
            items = self._unique(requests, days, limit)
        elif mode == _DIRECT:  # logged just now: yesterday to tomorrow; a row outside says so
            today = limit.date() - timedelta(days=1)
            days = {today - timedelta(days=1), today}
            window = (_midnight(today - timedelta(days=1)), _midnight(today + timedelta(days=2)))
        else:
            for r in requests:
                key = r.peek(limit)  # (id, created_at) without normalising, when log() set them
                days.add((key[1] if key is not None else r.values[_I_CREATED]).date())
        self._ensure_days(conn, days, new_days)
        prices = self._overrides(conn, _tenants(items))
        if direct:
            try:
                with (
                    conn.cursor() as cur,
                    cur.copy(_COPY_DIRECT, writer=_CopyWriter(cur, self._idle)) as cp,
                ):
                    cp.set_types(_COPY_TYPES)
                    written = self._stream(cp, items, users, prices, window)
                    deltas = self._deltas(written)  # while the server stores the last rows sent
            except pgerr.UniqueViolation as exc:  # an id stored before: the idempotent path
                raise _Again(_STAGING) from exc
            except pgerr.FeatureNotSupported as exc:
                _log.info("COPY into llmbase.requests refused for this role; using INSERT from staging")
                self.fast_path = False
                raise _Again(_STAGING) from exc
            conn.execute(_APPLY_DELTAS, deltas)
            return len(requests) - len(written)
        with conn.cursor() as cur:
            with cur.copy(_COPY_STAGE, writer=_CopyWriter(cur, self._idle)) as cp:
                cp.set_types(_COPY_TYPES)
                staged = self._stream(cp, items, users, prices)
            inserted = {(t.bytes, i.bytes) for t, i in cur.execute(_INSERT_REQUESTS).fetchall()}
        fresh = [v for v in staged if (v[0], v[_I_ID]) in inserted]
        if fresh:
            conn.execute(_APPLY_DELTAS, self._deltas(fresh))
        return len(requests) - len(fresh)

    @staticmethod
    def _unique(requests: Sequence[Record], days: set[date], limit: datetime) -> list[Record]:
        """The records without repeats (the first of an id wins; a replay may hold one twice),
        noting their UTC days."""
        items: dict[tuple[UUID, bytes], Record] = {}
        for r in requests:
            key = r.peek(limit)
            if key is None:
                v = r.values
                rid, at = v[_I_ID], v[_I_CREATED]
            else:
                rid, at = key[0].bytes, key[1]
            if (_tenant(r), rid) in items:
                continue
            items[(_tenant(r), rid)] = r
            days.add(at.date())
        return list(items.values())

    def _stream(
        self,
        cp: psycopg.Copy,
        items: Sequence[Record],
        users: dict[tuple[UUID, str], UUID],
        prices: dict[UUID, Any] | None,
        window: tuple[datetime, datetime] | None = None,
    ) -> list[tuple[Any, ...]]:
        """COPY the rows, normalising (and pricing) each as it goes: the server stores the
        rows already sent meanwhile. Returns the rows as stored. `window`: the times whose
        partitions are known to exist (a row outside: _Again, finding out the days first)."""
        out: list[tuple[Any, ...]] = []
        write = cp.write_row
        append = out.append
        lo, hi = window or (None, None)
        for k, r in enumerate(items):
            if not k % _PREFETCH:
                Record.prefetch(items[k : k + _PREFETCH])
            v = r.values
            if lo is not None and not lo <= v[_I_CREATED] < hi:
                raise _Again(_DIRECT_DAYS)
            if v[0] is None:  # its tenant was a slug when it was normalised
                v = r.values = (_tenant(r).bytes, *v[1:])
            if prices is not None and v[_I_COST] is None:
                v = r.values = self._priced(_tenant(r), v, prices)
            if v[_I_USER] is None and r.user_ref is not None:
                uid = users.get((_tenant(r), r.user_ref))
                if uid is not None:  # not into the record: its user may roll back with the batch
                    v = (*v[:_I_USER], uid.bytes, *v[_I_USER + 1 :])
            write(v)
            append(v)
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

    def _priced(self, t: UUID, values: tuple[Any, ...], prices: dict[UUID, Any]) -> tuple[Any, ...]:
        """The COPY row of a call logged without a cost, priced: tenant override, then the
        genai-prices catalog; unknown: NULL and cost_unknown. A pricing defect leaves it unset."""
        try:
            view = {c: values[_I[c]] for c in _PRICE_FIELDS}
            md = values[_I["metadata"]]
            if md is not None and b"cache_write_tokens" in md:
                view["metadata"] = json.loads(md[1:])
            out = list(values)
            for k, x in self._cost_of(view, prices.get(t)).fields().items():
                out[_I[k]] = x
            return tuple(out)
        except Exception:
            _log.exception("llmbase: pricing a request failed; its cost stays unset")
            return values

    @staticmethod
    def _deltas(rows: Sequence[Sequence[Any]]) -> dict[str, str]:
        """_APPLY_DELTAS' parameters: the rollups' and the users' activity deltas of rows."""
        deltas = rollup_deltas(rows)
        tenant = tenant_deltas(deltas)
        keys = ("tenant_id", "grain", "bucket_start", "user_id", "model", "provider", "request_type")
        tkeys = keys[:3] + keys[4:]
        users = [_delta_doc(keys, k, deltas[k]) for k in sorted(deltas, key=_sort_key)]
        tenants = [_delta_doc(tkeys, k, tenant[k]) for k in sorted(tenant, key=_sort_key)]
        profiles = [
            dict(zip(("tenant_id", "user_id", "requests", "tokens", "cost", "at"), p, strict=True))
            for p in _profile_params(deltas)
        ]
        return {"users": _json(users), "tenants": _json(tenants), "profiles": _json(profiles)}

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


def _delta_doc(names: tuple[str, ...], key: tuple[Any, ...], acc: _Acc) -> dict[str, Any]:
    doc = dict(zip(names, key, strict=True))
    doc.update(zip(_COUNTER_NAMES, acc.params(), strict=True))
    return doc


def _json(docs: list[dict[str, Any]]) -> str:
    """JSON for jsonb_to_recordset: UUIDs and times as orjson writes them, Decimal as text."""
    return orjson.dumps(docs, default=str).decode()


def _profile_params(deltas: dict[RollupKey, _Acc]) -> list[tuple[Any, ...]]:
    """llmbase.bump_user_activity's arguments per user (requests, tokens, cost, first call;
    the last call apart), from the hourly deltas."""
    per: dict[tuple[UUID, UUID], _Acc] = {}
    for (t, grain, _, uid, _, _, _), acc in deltas.items():
        if grain != "hour" or uid == _ZERO:
            continue
        p = per.get((t, uid))
        if p is None:
            p = per[(t, uid)] = _Acc()
        p.merge(acc)
    params: list[tuple[Any, ...]] = []
    for (t, uid), p in sorted(per.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        params.append((t, uid, p.requests, p.tokens[2], p.cost, p.first))
        if p.last != p.first:
            params.append((t, uid, 0, 0, Decimal(0), p.last))
    return params


#: Connections inherited across fork: kept referenced so the child never closes the
#: parent's sockets (closing would end the parent's session).
_ABANDONED: list[psycopg.Connection[Any]] = []
