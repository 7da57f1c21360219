"""The /v1 REST API end to end over the SDK: ingest, conversations and messages, feedback,
users, documents, reports, cache, limits and budgets, audit, settings, keys; pagination;
the checked-in OpenAPI document is current."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import llmbase
from llmbase.server import create_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def admin(client: llmbase.LLMBase) -> Iterator[TestClient]:
    key = client.keys.create("admin", scopes=["admin"])
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {key.secret}"}) as c:
        yield c


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def test_openapi_checked_in_is_current() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_openapi.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_ingest_batch_validates_each_record_and_waits(client: llmbase.LLMBase, admin: TestClient) -> None:
    records: list[Any] = [
        {
            "model": "gpt-4o",
            "provider": "openai",
            "tokens_prompt": 10,
            "tokens_completion": 5,
            "latency_ms": 120,
        },
        {"model": "gpt-4o", "tokens_prompt": -1},
        {"model": "x", "latency_ms": "slow"},
        {"model": "m", "tenant_id": "00000000-0000-0000-0000-000000000002"},
        {"model": "claude", "status": "error", "user": "alice", "request_body": {"x": [1, 2]}},
    ]
    body = ok(admin.post("/v1/ingest/requests?wait=true", json={"records": records}))
    assert body["accepted"] == 2 and body["flushed"] is True and len(body["ids"]) == 2
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "tokens_prompt"),
        (2, "latency_ms"),
        (3, "tenant_id"),
    ]
    today = ok(admin.get("/v1/reports/today"))
    assert today["requests"] == 2 and today["errors"] == 1 and today["tokens_total"] == 15
    rows = ok(admin.get("/v1/reports/slowest", params={"limit": 5}))
    assert rows[0]["id"] == body["ids"][0] and rows[0]["latency_ms"] == 120
    assert client.users.get("alice").external_id == "alice"
    by_model = ok(admin.get("/v1/reports/error-rate"))
    assert {r["model"]: r["errors"] for r in by_model} == {"gpt-4o": 0, "claude": 1}
    assert ok(admin.post("/v1/ingest/requests", json={"records": []}), 422)["error"]["field"] == "records"


def test_ingest_runs(client: llmbase.LLMBase, admin: TestClient) -> None:
    conv = client.conversations.create(title="agent")
    run_id = "0190f0f0-0000-7000-8000-000000000001"
    records = [
        {"kind": "run", "id": run_id, "name": "agent", "status": "running", "conversation_id": str(conv.id)},
        {
            "kind": "iteration",
            "run_id": run_id,
            "iteration": 1,
            "api_ms": 100,
            "tool_ms": 50,
            "total_ms": 150,
        },
        {"kind": "tool_call", "run_id": run_id, "iteration": 1, "name": "search", "duration_ms": 50},
        {
            "kind": "run",
            "id": run_id,
            "status": "success",
            "total_ms": 150,
            "iteration_count": 1,
            "ended_at": datetime.now(UTC).isoformat(),
        },
        {"kind": "nope"},
        {"kind": "iteration", "run_id": run_id},
    ]
    body = ok(admin.post("/v1/ingest/runs?wait=true", json={"records": records}))
    assert body["accepted"] == 4 and [e["index"] for e in body["errors"]] == [4, 5]
    assert body["errors"][1]["field"] == "iteration"
    stats = ok(admin.get("/v1/reports/iterations"))
    assert stats[0]["iteration"] == 1 and stats[0]["samples"] == 1 and stats[0]["avg_api_ms"] == 100
    assert ok(admin.get(f"/v1/conversations/{conv.id}"))["total_iterations"] == 1


def test_conversations_messages_feedback(client: llmbase.LLMBase, admin: TestClient) -> None:
    alice = client.users.create("alice")
    conv = ok(admin.post("/v1/conversations", json={"title": "hi", "user_id": str(alice.id)}), 201)
    cid = conv["id"]
    for i in range(5):
        ok(
            admin.post(
                f"/v1/conversations/{cid}/messages",
                json={"role": "user", "content": f"m{i}", "token_count": 3},
            ),
            201,
        )
    got = ok(admin.get(f"/v1/conversations/{cid}"))
    assert got["message_count"] == 5 and got["total_tokens"] == 15
    first = ok(admin.get(f"/v1/conversations/{cid}/messages", params={"limit": 2}))
    assert [m["content"] for m in first["items"]] == ["m3", "m4"] and first["next_cursor"]
    older = ok(
        admin.get(f"/v1/conversations/{cid}/messages", params={"limit": 2, "cursor": first["next_cursor"]})
    )
    assert [m["content"] for m in older["items"]] == ["m1", "m2"]
    mid = first["items"][0]["id"]
    fb = ok(admin.put(f"/v1/messages/{mid}/feedback", json={"rating": "up", "user_id": str(alice.id)}))
    assert fb["rating"] == 1
    assert ok(admin.get(f"/v1/messages/{mid}/feedback/summary"))["thumbs_up"] == 1
    assert ok(admin.get(f"/v1/conversations/{cid}/feedback"))["thumbs_up"] == 1
    assert ok(admin.get(f"/v1/messages/{mid}/feedback", params={"user_id": str(alice.id)}))["rating"] == 1
    ok(admin.delete(f"/v1/messages/{mid}/feedback", params={"user_id": str(alice.id)}), 204)
    assert ok(admin.get(f"/v1/messages/{mid}/feedback/summary"))["thumbs_up"] == 0
    assert ok(admin.patch(f"/v1/conversations/{cid}", json={"title": "renamed"}))["title"] == "renamed"
    assert ok(admin.post(f"/v1/conversations/{cid}/archive"))["is_archived"] is True
    assert ok(admin.get("/v1/conversations"))["items"] == []
    assert [c["id"] for c in ok(admin.get("/v1/conversations", params={"archived": "all"}))["items"]] == [cid]
    assert ok(admin.post(f"/v1/conversations/{cid}/complete"))["completed_at"] is not None
    ok(admin.delete(f"/v1/conversations/{cid}"), 204)
    err = ok(admin.get(f"/v1/conversations/{cid}"), 404)["error"]
    assert err["code"] == "not_found"
    assert ok(admin.post("/v1/conversations", json={"titel": "typo"}), 422)["error"]["field"] == "titel"


def test_conversation_pages(client: llmbase.LLMBase, admin: TestClient) -> None:
    made = {str(client.conversations.create(title=f"c{i}").id) for i in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = ok(admin.get("/v1/conversations", params=params))
        seen += [c["id"] for c in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and set(seen) == made
    assert ok(admin.get("/v1/conversations", params={"cursor": "garbage"}), 422)["error"]["field"] == "cursor"


def test_users(admin: TestClient) -> None:
    u = ok(admin.post("/v1/users", json={"external_id": "bob", "email": "b@example.com"}), 201)
    assert ok(admin.post("/v1/users", json={"external_id": "bob"}), 409)["error"]["code"] == "conflict"
    assert ok(admin.get("/v1/users/bob"))["id"] == u["id"]
    assert ok(admin.patch(f"/v1/users/{u['id']}", json={"display_name": "Bob"}))["display_name"] == "Bob"
    assert ok(admin.get("/v1/users/bob/profile"))["user_id"] == u["id"]
    assert "bob" in [x["external_id"] for x in ok(admin.get("/v1/users"))["items"]]
    assert ok(admin.delete("/v1/users/bob"))["kind"] == "user"
    assert ok(admin.get("/v1/users/bob"), 404)["error"]["code"] == "not_found"


def test_documents(admin: TestClient) -> None:
    ok(admin.post("/v1/collections", json={"name": "kb", "dimension": 3}), 201)
    assert ok(admin.post("/v1/collections", json={"name": "kb", "dimension": 3}), 409)
    docs = [
        {
            "id": "pets",
            "chunks": [{"text": "Cats sleep all day.", "embedding": [1, 0, 0]}],
            "metadata": {"topic": "pets"},
        },
        {
            "id": "bills",
            "chunks": [{"text": "Invoices are due in 30 days.", "embedding": [0, 1, 0]}],
            "metadata": {"topic": "money"},
        },
        {"id": "notes", "content": "Invoices are paid by bank transfer.", "metadata": {"topic": "money"}},
    ]
    res = ok(admin.post("/v1/collections/kb/documents", json={"documents": docs}))
    assert res["documents"] == 3 and len(res["document_ids"]) == 3
    bad = ok(
        admin.post(
            "/v1/collections/kb/documents",
            json={"documents": [{"chunks": [{"text": "x", "embedding": [1, 0]}]}]},
        ),
        422,
    )
    assert "embedding" in bad["error"]["field"]
    hits = ok(admin.post("/v1/collections/kb/search", json={"vector": [0.9, 0.1, 0], "k": 1}))
    assert hits[0]["external_id"] == "pets"
    hits = ok(
        admin.post(
            "/v1/collections/kb/search",
            json={"query": "invoices", "mode": "text", "filter": {"topic": "money"}},
        )
    )
    assert {h["external_id"] for h in hits} == {"bills", "notes"}
    listed = ok(admin.get("/v1/collections/kb/documents", params={"limit": 2}))
    assert len(listed["items"]) == 2 and listed["next_cursor"]
    doc_id = res["document_ids"][0]
    assert ok(admin.get(f"/v1/collections/kb/documents/{doc_id}"))["external_id"] == "pets"
    assert (
        ok(admin.get(f"/v1/collections/kb/documents/{doc_id}/chunks"))[0]["content"] == "Cats sleep all day."
    )
    assert (
        ok(admin.post("/v1/collections/kb/documents/delete", json={"filter": {"topic": "money"}}))["count"]
        == 2
    )
    ok(admin.delete(f"/v1/collections/kb/documents/{doc_id}"), 204)
    assert ok(admin.get("/v1/collections/kb/stats"))["documents"] == 0
    assert [c["name"] for c in ok(admin.get("/v1/collections"))["items"]] == ["kb"]
    ok(admin.delete("/v1/collections/kb"), 204)
    assert ok(admin.get("/v1/collections/kb"), 404)["error"]["code"] == "not_found"


def test_cache_limits_budgets(admin: TestClient) -> None:
    req = {"request": {"messages": [{"role": "user", "content": "hi"}]}, "model": "gpt-4o"}
    assert ok(admin.post("/v1/cache/get", json=req), 404)["error"]["code"] == "not_found"
    put = ok(admin.post("/v1/cache/put", json={**req, "response": {"text": "hello"}, "cost_usd": 0.01}), 201)
    assert put["response"] == {"text": "hello"}
    assert ok(admin.post("/v1/cache/get", json=req))["response"] == {"text": "hello"}
    stats = ok(admin.get("/v1/cache/stats"))
    assert stats["entries"] == 1 and stats["hits"] == 1
    assert ok(admin.post("/v1/cache/invalidate", json={"everything": True}))["count"] == 1
    assert ok(admin.post("/v1/cache/clean"))["count"] == 0

    lim = ok(admin.post("/v1/limits", json={"limit": 2, "window": "minute"}))
    assert ok(admin.post("/v1/limits/check", json={}))["allowed"] is True
    assert ok(admin.post("/v1/limits/consume", json={"requests": 2}))["allowed"] is True
    assert ok(admin.post("/v1/limits/consume", json={}))["allowed"] is False
    assert [x["id"] for x in ok(admin.get("/v1/limits"))["items"]] == [lim["id"]]
    ok(admin.delete(f"/v1/limits/{lim['id']}"), 204)
    assert ok(admin.get("/v1/limits"))["items"] == []

    b = ok(admin.post("/v1/budgets", json={"cap_usd": 5}))
    assert ok(admin.post("/v1/budgets/check", json={"estimate_usd": 1}))["allowed"] is True
    assert ok(admin.post("/v1/budgets/check", json={"estimate_usd": 6}))["allowed"] is False
    assert isinstance(ok(admin.get("/v1/budgets/usage")), list)
    assert [x["id"] for x in ok(admin.get("/v1/budgets"))["items"]] == [b["id"]]
    ok(admin.delete(f"/v1/budgets/{b['id']}"), 204)


def test_admin_settings_keys_audit(client: llmbase.LLMBase, admin: TestClient) -> None:
    s = ok(admin.get("/v1/settings"))
    v = s["version"]
    s2 = ok(admin.put("/v1/settings", json={"settings": {"default_model": "gpt-4o"}, "expected_version": v}))
    assert s2["settings"]["default_model"] == "gpt-4o"
    assert ok(admin.put("/v1/settings", json={"settings": {}, "expected_version": v}), 409)
    err = ok(admin.patch("/v1/settings", json={"retrieval": {"top_k": "x"}}), 422)["error"]
    assert err["field"] == "retrieval.top_k"
    assert ok(admin.patch("/v1/settings", json={"temperature": 0.5}))["settings"]["temperature"] == 0.5
    created = ok(admin.post("/v1/keys", json={"name": "bot", "scopes": ["ingest"]}), 201)
    assert created["secret"].startswith("llmb_")
    assert created["key"]["id"] in [k["id"] for k in ok(admin.get("/v1/keys"))["items"]]
    assert ok(admin.delete(f"/v1/keys/{created['key']['id']}"))["revoked_at"] is not None
    entries = ok(admin.get("/v1/audit", params={"action": "api_key.*", "limit": 1}))
    assert len(entries["items"]) == 1 and entries["next_cursor"]
    assert entries["items"][0]["actor"].startswith("api_key:")


def test_document_files_upload(admin: TestClient) -> None:
    ok(admin.post("/v1/collections", json={"name": "notes", "dimension": 3}), 201)
    files = [
        ("files", ("intro.md", b"# Getting started\n\nReset your password in Settings.", "text/markdown")),
        ("files", ("faq.txt", "Refunds take 5 days. \u00e9".encode(), "text/plain")),
    ]
    res = ok(admin.post("/v1/collections/notes/files", files=files, data={"metadata": '{"lang": "en"}'}))
    assert res["documents"] == 2
    same = ok(admin.post("/v1/collections/notes/files", files=files, data={"metadata": '{"lang": "en"}'}))
    assert same["skipped"] == 2 and same["document_ids"] == res["document_ids"]  # same names: same docs
    hits = ok(admin.post("/v1/collections/notes/search", json={"query": "password", "mode": "text"}))
    assert hits[0]["title"] == "Getting started" and hits[0]["external_id"] == "intro.md"
    bad = ok(
        admin.post("/v1/collections/notes/files", files=[("files", ("x.exe", b"MZ", "application/x"))]), 422
    )
    assert bad["error"]["field"] == "files"
    bad = ok(admin.post("/v1/collections/notes/files", files=files[:1], data={"metadata": "[1]"}), 422)
    assert bad["error"]["field"] == "metadata"
