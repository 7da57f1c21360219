"""The request log's write path: `log()` enqueues; a background writer batches records into
PostgreSQL with binary COPY, spools them to disk while the database is away and replays
them when it is back (docs/ingest.md).

Modules: api (client.requests, enqueue), queue, records (normalisation), writer (the
thread), spool (the disk spool), sinks (the sink interface and the PostgreSQL sink).
"""

from .api import AsyncRequests, Requests, enqueue

__all__ = ["AsyncRequests", "Requests", "enqueue"]
