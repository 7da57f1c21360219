"""The write path's pure parts: normalisation by the documented rule, redaction, spool files."""

from __future__ import annotations

import json
import os
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from llmbase.ingest.records import Normaliser, Record, decode, encode
from llmbase.ingest.spool import HEADER, Spool
from llmbase.redact import MARK, scrub, scrub_json, scrub_text

T = UUID(int=7)


def norm(scrub_secrets: bool = True, body: int = 1024, meta: int = 4096) -> Normaliser:
    return Normaliser(body_max_bytes=body, metadata_max_bytes=meta, scrub=scrub_secrets)


def md(rec: Record) -> dict[str, object]:
    out: dict[str, object] = json.loads(rec.row["metadata"])
    return out


# -- normalisation ------------------------------------------------------------------------------
def test_text_with_nul_and_lone_surrogates_is_kept_with_replacement_characters() -> None:
    rec = norm().request(T, {"model": "gpt\x00-4o", "error_message": "bad \ud800 thing", "tags": ["a\x00b"]})
    assert rec.row["model"] == "gpt\ufffd-4o"
    assert rec.row["error_message"] == "bad \ufffd thing"
    assert rec.row["tags"] == ["a\ufffdb"]


def test_bodies_become_json_text_by_the_sanitise_rule() -> None:
    body = {
        "text": "nul\x00 and \udfff",
        1: {1, 2},
        "when": datetime(2024, 1, 2, tzinfo=UTC),
        "nan": float("nan"),
    }
    rec = norm().request(T, {"request_body": body, "response_body": "plain string"})
    req = json.loads(rec.row["request_body"])
    assert req["text"] == "nul\ufffd and \ufffd"
    assert req["1"] == [1, 2]
    assert req["when"] == "2024-01-02 00:00:00+00:00"
    assert req["nan"] == "NaN"
    assert json.loads(rec.row["response_body"]) == "plain string"
    assert rec.row["bodies_truncated"] is False


def test_oversized_body_is_replaced_by_a_visible_marker() -> None:
    big = {"content": "x" * 5000}
    rec = norm(body=1000).request(T, {"request_body": big, "response_body": {"ok": True}})
    marker = json.loads(rec.row["request_body"])
    assert marker["$truncated"] is True
    assert marker["original_bytes"] == len(json.dumps(big, separators=(",", ":")))
    assert marker["head"] == json.dumps(big, separators=(",", ":"))[:1000]
    assert json.loads(rec.row["response_body"]) == {"ok": True}
    assert rec.row["bodies_truncated"] is True


def test_invalid_values_become_null_and_are_noted() -> None:
    rec = norm().request(
        T,
        {
            "tokens_prompt": -5,
            "tokens_completion": "many",
            "latency_ms": float("inf"),
            "cost_usd": "free",
            "user_id": "not-a-uuid",
            "status": "exploded",
            "request_type": "telepathy",
            "created_at": "yesterday-ish",
            "http_status": 99999,
        },
    )
    row = rec.row
    for col in ("tokens_prompt", "tokens_completion", "latency_ms", "cost_usd", "user_id", "http_status"):
        assert col not in row
    assert row["status"] == "success"  # the invalid status was dropped, the default applies
    assert row["request_type"] == "other"
    assert abs(row["created_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    invalid = md(rec)["_llmbase"]["invalid"]  # type: ignore[index]
    assert set(invalid) == {
        "tokens_prompt",
        "tokens_completion",
        "latency_ms",
        "cost_usd",
        "user_id",
        "status",
        "request_type",
        "created_at",
        "http_status",
    }
    assert invalid["tokens_prompt"]["value"] == "-5"


def test_aliases_totals_money_and_times() -> None:
    rec = norm().request(
        T,
        {
            "success": False,
            "request_type": "Embeddings",
            "tokens_prompt": 10.0,
            "tokens_completion": 5,
            "cost_usd": 0.1,
            "created_at": datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            "provider": "p" * 300,
            "surprise": {"kept": True},
        },
    )
    row = rec.row
    assert row["status"] == "error"
    assert row["request_type"] == "embedding"
    assert row["tokens_total"] == 15
    assert row["cost_usd"] == Decimal("0.1000000000")
    assert row["created_at"] == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert len(row["provider"]) == 100 and row["provider"].endswith("…")
    assert md(rec)["surprise"] == {"kept": True}


def test_external_user_reference_and_user_id_precedence() -> None:
    assert norm().request(T, {"user": "alice"}).user_ref == "alice"
    rec = norm().request(T, {"user": "alice", "user_id": UUID(int=3)})
    assert rec.user_ref is None and rec.row["user_id"] == UUID(int=3)
    bad = norm().request(T, {"user": "x" * 300})
    assert bad.user_ref is None and "user" in md(bad)["_llmbase"]["invalid"]  # type: ignore[index]


def test_metadata_that_is_not_a_mapping_or_too_big() -> None:
    assert md(norm().request(T, {"metadata": [1, 2]})) == {"value": [1, 2]}
    big = md(norm(meta=100).request(T, {"metadata": {"k": "v" * 500}}))
    assert big["$truncated"] is True


def test_runs_need_their_identity() -> None:
    n = norm()
    assert n("run", T, {"name": "x"}).invalid == "run without id"
    assert n("iteration", T, {"run_id": UUID(int=1)}).invalid == "iteration without iteration"
    ok = n("iteration", T, {"run_id": UUID(int=1), "iteration": 2, "api_ms": 3})
    assert ok.invalid is None and ok.row == {"run_id": UUID(int=1), "iteration": 2, "api_ms": 3.0}
    tool = n("tool_call", T, {"run_id": UUID(int=1), "name": "search"})
    assert tool.invalid is None and isinstance(tool.row["id"], UUID) and "started_at" in tool.row
    assert n("mystery", T, {"a": 1}).invalid == "unknown record kind 'mystery'"


def test_encode_decode_round_trip() -> None:
    rec = norm().request(T, {"model": "m", "cost_usd": Decimal("1.5"), "user": "bob", "latency_ms": 3.25})
    rec.attempts = 2
    back = decode(encode(rec))
    assert (back.kind, back.tenant, back.user_ref, back.attempts) == ("request", T, "bob", 2)
    assert back.row == rec.row
    assert back.fresh is False and rec.fresh is True
    slug = decode(encode(Record("run", "acme", {"id": UUID(int=9)})))
    assert slug.tenant == "acme" and slug.row == {"id": UUID(int=9)}


# -- redaction ----------------------------------------------------------------------------------
SECRETS = [
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-1234567890-abcdefghij",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_token_shapes_are_redacted_in_text_and_json(secret: str) -> None:
    assert secret not in scrub_text(f"the key {secret} leaked")
    value = {"messages": [{"content": f"here: {secret}."}]}
    text = scrub_json(value, json.dumps(value))
    assert secret not in text and MARK in text
    json.loads(text)


def test_named_credentials_bearer_urls_and_pem() -> None:
    value = {
        "headers": {"Authorization": "Bearer opaque-token-value-123", "X-Api-Key": "hunter2"},
        "password": 1234,
        "max_tokens": 100,
        "prompt_tokens": 5,
        "dsn": "postgres://bob:s3cret@db.example.com/x",
        "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
    }
    out = json.loads(scrub_json(value, json.dumps(value)))
    assert out["headers"] == {"Authorization": MARK, "X-Api-Key": MARK}
    assert out["password"] == MARK
    assert out["max_tokens"] == 100 and out["prompt_tokens"] == 5  # not credentials
    assert out["dsn"] == f"postgres://bob:{MARK}@db.example.com/x"
    assert out["pem"] == MARK
    text = scrub_text("Authorization: Bearer abcdefghijklmnop1234, api_key=abc123 password: pw1234")
    assert text == f"Authorization: Bearer {MARK}, api_key={MARK} password: {MARK}"
    assert scrub_text("a basic understanding of tokens_total=5") == "a basic understanding of tokens_total=5"
    assert scrub({"api_key": "x", "nested": ["Bearer abcdefghijklmnopqrst"]}) == {
        "api_key": MARK,
        "nested": [f"Bearer {MARK}"],
    }


def test_normaliser_redacts_bodies_metadata_and_errors() -> None:
    key = SECRETS[0]
    rec = norm().request(
        T,
        {
            "request_body": {"api_key": "plain", "messages": [key]},
            "response_body": {"error": f"invalid key {key}"},
            "metadata": {"authorization": "Bearer xyz", "note": key},
            "error_message": f"401: Incorrect API key provided: {key}",
        },
    )
    blob = json.dumps(rec.row, default=str)
    assert key not in blob and "plain" not in blob and "xyz" not in blob
    off = norm(scrub_secrets=False).request(T, {"metadata": {"note": key}})
    assert key in off.row["metadata"]


# -- the spool file format -----------------------------------------------------------------------
def test_spool_appends_replays_oldest_first_and_deletes(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for i in range(6):
        assert sp.append([f"rec{i}".encode() * 10], sync=True) == 1
    assert sp.pending()
    seen: list[bytes] = []
    for seg in sp.claim():
        for chunk in seg.chunks(100):
            seen.extend(chunk)
        seg.delete()
    assert seen == [f"rec{i}".encode() * 10 for i in range(6)]
    assert not sp.pending()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_spool_ignores_a_partial_tail(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=1 << 20)
    sp.append([b"one", b"two"], sync=True)
    sp.seal()
    (seg_path,) = tmp_path.glob("*.seg")
    frame = struct.pack("<II", 100, zlib.crc32(b"x" * 100)) + b"x" * 40  # cut short by a crash
    with seg_path.open("ab") as f:
        f.write(frame)
    (seg,) = list(Spool(tmp_path, max_bytes=1 << 20).claim())
    assert [p for chunk in seg.chunks(10) for p in chunk] == [b"one", b"two"]
    assert seg.ignored_bytes == len(frame)
    seg.release()
    # A flipped byte (bad CRC) also ends the segment there.
    data = bytearray(seg_path.read_bytes())
    data[len(HEADER) + 8] ^= 0xFF
    seg_path.write_bytes(bytes(data))
    (seg,) = list(Spool(tmp_path, max_bytes=1 << 20).claim())
    assert [p for chunk in seg.chunks(10) for p in chunk] == []
    seg.release()


def test_spool_is_bounded(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=len(HEADER) + 3 * (8 + 100))
    assert sp.append([b"x" * 100] * 5, sync=False) == 3
    assert sp.append([b"y"], sync=False) == 0
    assert sp.stats()["spool_bytes"] <= sp.max_bytes


def test_a_locked_segment_is_left_to_its_owner(tmp_path: Path) -> None:
    owner = Spool(tmp_path, max_bytes=1 << 20)
    owner.append([b"mine"], sync=True)  # the active segment stays locked by its writer
    other = Spool(tmp_path, max_bytes=1 << 20)
    assert list(other.claim()) == []
    owner.seal()
    (seg,) = list(other.claim())
    assert [p for c in seg.chunks(10) for p in c] == [b"mine"]
    seg.delete()


def test_spool_files_are_private(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "sp", max_bytes=1 << 20)
    sp.append([b"x"], sync=True)
    assert (tmp_path / "sp").stat().st_mode & 0o777 == 0o700
    (seg,) = (tmp_path / "sp").glob("*.seg")
    assert seg.stat().st_mode & 0o777 == 0o600
    assert os.path.getsize(seg) == len(HEADER) + 8 + 1
