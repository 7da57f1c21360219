"""`llmbase.ops.stats` / `llmbase stats`: sizes summed over partitions, index usage, dead
rows, connections, the request log's partitions, embeddings and cache totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import llmbase
from llmbase import ops
from llmbase.errors import ValidationError


def test_stats_of_a_fresh_database(db_url: str) -> None:
    s = ops.stats(db_url)
    assert s.database_bytes > 0
    assert s.server_version.startswith("18")
    names = {(t.schema, t.name) for t in s.tables}
    assert ("llmbase", "requests") in names
    assert ("llmbase", "conversations") in names
    # Partitions are summed into their parent, never listed themselves.
    assert not any(t.name.startswith("requests_p") for t in s.tables)
    assert all(t.total_bytes == t.table_bytes + t.index_bytes for t in s.tables)
    assert s.connections is not None
    assert s.connections.total >= 1
    assert s.connections.max_connections >= s.connections.cluster_total
    assert s.request_log is not None
    assert s.embeddings is not None
    assert s.embeddings.collections == 0


def test_stats_sum_partitions_and_count_index_scans(client: llmbase.LLMBase, db_url: str) -> None:
    today = datetime.now(UTC).date()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT llmbase.ensure_request_partitions(%s, %s)", (today - timedelta(days=2), today))
    for i in range(30):
        client.requests.log(model="m", tokens_prompt=i, latency_ms=1.0)
    assert client.requests.flush(30)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ANALYZE llmbase.conversations")
        parts = conn.execute(
            "SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)), count(*)"
            " FROM pg_partition_tree('llmbase.requests') WHERE isleaf"
        ).fetchone()
        assert parts is not None
    s = ops.stats(db_url)
    req = next(t for t in s.tables if t.name == "requests")
    assert req.kind == "partitioned"
    assert req.partitions == parts[2] >= 3
    assert req.table_bytes == parts[0]
    assert req.index_bytes == parts[1]
    assert s.request_log is not None
    assert s.request_log.partitions == parts[2]
    assert s.request_log.oldest is not None and s.request_log.oldest <= today - timedelta(days=2)
    assert s.request_log.newest is not None and s.request_log.newest >= today
    # The primary key is never "unused": it enforces uniqueness.
    pk = [i for i in s.indexes if i.table == "llmbase.requests" and i.primary]
    assert pk and not pk[0].unused
    assert all(not (i.unique or i.primary) for i in s.unused_indexes)


def test_stats_see_dead_rows(client: llmbase.LLMBase, db_url: str) -> None:
    conv = client.conversations.create(title="x")
    with psycopg.connect(db_url, autocommit=True) as conn:
        for i in range(5):
            conn.execute("UPDATE llmbase.conversations SET title = %s WHERE id = %s", (str(i), conv.id))
        conn.execute("SELECT pg_stat_force_next_flush()")
    s = ops.stats(db_url)
    v = next(v for v in s.vacuum if v.table == "llmbase.conversations")
    assert v.dead_rows >= 5
    assert 0 < v.dead_ratio <= 1


def test_stats_accepts_a_client_and_a_connection(client: llmbase.LLMBase, db_url: str) -> None:
    assert ops.stats(client).database == ops.stats(db_url).database
    with psycopg.connect(db_url) as conn:
        assert ops.stats(conn).database == conn.info.dbname


@pytest.mark.parametrize("bad", [None, 42, b"postgresql://", object()])
def test_stats_rejects_what_is_not_a_target(bad: object) -> None:
    with pytest.raises(ValidationError) as e:
        ops.stats(bad)  # type: ignore[arg-type]
    assert e.value.field == "target"
