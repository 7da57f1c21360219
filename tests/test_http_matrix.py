"""Cross-tenant and scope matrix over every /v1 endpoint of the REST routers.

- Tenant A's admin key, aimed at tenant B's objects (ids in the path), gets 404, the same
  status and body shape as for a missing object; no response to A ever contains one of B's
  identifiers (0 leaks); B's data is unchanged after all of A's attempts (0 writes).
- Scopes: a read key gets 403 on every endpoint that needs more; an ingest key gets 403 on
  every endpoint but ingest; a write key gets 403 on admin endpoints.
The table below must name every route of the REST routers: a new endpoint without a row
fails the test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

import llmbase
from llmbase.server import create_app

TAGS = {
    "ingest",
    "conversations",
    "feedback",
    "users",
    "documents",
    "reports",
    "runs",
    "cache",
    "limits",
    "admin",
}
MSG = {"role": "user", "content": "from A"}
CACHE_REQ: dict[str, Any] = {
    "request": {"messages": [{"role": "user", "content": "B's question"}]},
    "model": "m",
}


@dataclass(frozen=True)
class Row:
    scope: str  # the scope the endpoint needs
    body: Any = None  # a valid JSON body
    params: dict[str, Any] | None = None
    cross: bool = False  # path holds an object id: A gets 404 for B's like for a missing one
    upload: bool = False  # a multipart file upload instead of a JSON body


# (method, path) -> Row. Bodies are valid, so the call reaches the SDK.
TABLE: dict[tuple[str, str], Row] = {
    # Records naming B's conversation stay A's: B's conversation is not completed by A's run.
    ("POST", "/v1/ingest/requests"): Row(
        "ingest", {"records": [{"model": "a-model", "latency_ms": 5, "conversation_id": "{b_conv}"}]}
    ),
    ("POST", "/v1/ingest/runs"): Row(
        "ingest",
        {
            "records": [
                {
                    "kind": "run",
                    "id": str(uuid.uuid4()),
                    "conversation_id": "{b_conv}",
                    "status": "success",
                    "ended_at": "2026-01-01T00:00:00Z",
                    "total_ms": 5,
                    "iteration_count": 3,
                }
            ]
        },
    ),
    ("GET", "/v1/conversations"): Row("read", params={"archived": "all"}),
    ("POST", "/v1/conversations"): Row("write", {"title": "A's"}),
    ("GET", "/v1/conversations/{conversation_id}"): Row("read", cross=True),
    ("PATCH", "/v1/conversations/{conversation_id}"): Row("write", {"title": "hijacked"}, cross=True),
    ("DELETE", "/v1/conversations/{conversation_id}"): Row("write", cross=True),
    ("POST", "/v1/conversations/{conversation_id}/archive"): Row("write", cross=True),
    ("POST", "/v1/conversations/{conversation_id}/unarchive"): Row("write", cross=True),
    ("POST", "/v1/conversations/{conversation_id}/complete"): Row("write", cross=True),
    ("GET", "/v1/conversations/{conversation_id}/messages"): Row("read", cross=True),
    ("POST", "/v1/conversations/{conversation_id}/messages"): Row("write", MSG, cross=True),
    ("GET", "/v1/conversations/{conversation_id}/feedback"): Row("read", cross=True),
    ("GET", "/v1/messages/{message_id}"): Row("read", cross=True),
    ("PUT", "/v1/messages/{message_id}/feedback"): Row(
        "write", {"rating": "down", "user_id": "{a_user}"}, cross=True
    ),
    ("GET", "/v1/messages/{message_id}/feedback"): Row("read", params={"user_id": "{b_user}"}, cross=True),
    ("DELETE", "/v1/messages/{message_id}/feedback"): Row(
        "write", params={"user_id": "{b_user}"}, cross=True
    ),
    ("GET", "/v1/messages/{message_id}/feedback/summary"): Row("read", cross=True),
    ("GET", "/v1/users"): Row("read"),
    ("POST", "/v1/users"): Row("write", {"external_id": "carol"}),
    ("GET", "/v1/users/{user}"): Row("read", cross=True),
    ("PATCH", "/v1/users/{user}"): Row("write", {"display_name": "hijacked"}, cross=True),
    ("DELETE", "/v1/users/{user}"): Row("write", cross=True),
    ("GET", "/v1/users/{user}/profile"): Row("read", cross=True),
    ("GET", "/v1/collections"): Row("read"),
    ("POST", "/v1/collections"): Row("write", {"name": "a-new", "dimension": 3}),
    ("GET", "/v1/collections/{collection}"): Row("read", cross=True),
    ("GET", "/v1/collections/{collection}/stats"): Row("read", cross=True),
    ("DELETE", "/v1/collections/{collection}"): Row("write", cross=True),
    ("POST", "/v1/collections/{collection}/documents"): Row(
        "write", {"documents": [{"id": "x", "chunks": [{"text": "A", "embedding": [1, 0, 0]}]}]}, cross=True
    ),
    ("POST", "/v1/collections/{collection}/files"): Row("write", upload=True, cross=True),
    ("GET", "/v1/collections/{collection}/documents"): Row("read", cross=True),
    ("GET", "/v1/collections/{collection}/documents/{document_id}"): Row("read", cross=True),
    ("GET", "/v1/collections/{collection}/documents/{document_id}/chunks"): Row("read", cross=True),
    ("DELETE", "/v1/collections/{collection}/documents/{document_id}"): Row("write", cross=True),
    ("POST", "/v1/collections/{collection}/documents/delete"): Row(
        "write", {"filter": {"topic": "b"}}, cross=True
    ),
    ("POST", "/v1/collections/{collection}/search"): Row("read", {"vector": [1, 0, 0], "k": 5}, cross=True),
    ("GET", "/v1/reports/daily"): Row("read"),
    ("GET", "/v1/reports/hourly"): Row("read"),
    ("GET", "/v1/reports/monthly"): Row("read"),
    ("GET", "/v1/reports/today"): Row("read"),
    ("GET", "/v1/reports/cost-by-user"): Row("read"),
    ("GET", "/v1/reports/user-usage"): Row("read", params={"user": "{user}"}, cross=True),
    ("GET", "/v1/reports/error-rate"): Row("read"),
    ("GET", "/v1/reports/latency"): Row("read"),
    ("GET", "/v1/reports/slowest"): Row("read"),
    ("GET", "/v1/reports/iterations"): Row("read"),
    ("GET", "/v1/runs"): Row("read"),
    ("GET", "/v1/runs/{run_id}"): Row("read", cross=True),
    ("GET", "/v1/reports/iteration-trends"): Row("read"),
    ("GET", "/v1/reports/completions"): Row("read"),
    ("GET", "/v1/cache/stats"): Row("read"),
    ("POST", "/v1/cache/get"): Row("read", CACHE_REQ),
    ("POST", "/v1/cache/put"): Row("write", {**CACHE_REQ, "response": {"text": "A's"}}),
    ("POST", "/v1/cache/invalidate"): Row("write", CACHE_REQ),
    ("POST", "/v1/cache/clean"): Row("write"),
    ("POST", "/v1/limits/check"): Row("read", {}),
    ("POST", "/v1/limits/consume"): Row("write", {}),
    ("GET", "/v1/limits"): Row("admin"),
    ("POST", "/v1/limits"): Row("admin", {"limit": 1000}),
    ("DELETE", "/v1/limits/{limit_id}"): Row("admin", cross=True),
    ("GET", "/v1/budgets/usage"): Row("read"),
    ("POST", "/v1/budgets/check"): Row("read", {"estimate_usd": 1}),
    ("GET", "/v1/budgets"): Row("admin"),
    ("POST", "/v1/budgets"): Row("admin", {"cap_usd": 100}),
    ("DELETE", "/v1/budgets/{budget_id}"): Row("admin", cross=True),
    ("GET", "/v1/audit"): Row("admin"),
    ("GET", "/v1/settings"): Row("admin"),
    ("PUT", "/v1/settings"): Row("admin", {"settings": {"default_model": "a-model"}}),
    ("PATCH", "/v1/settings"): Row("admin", {"language": "fr"}),
    ("GET", "/v1/keys"): Row("admin", params={"include_revoked": True}),
    ("POST", "/v1/keys"): Row("admin", {"name": "a-key"}),
    ("DELETE", "/v1/keys/{key_id}"): Row("admin", cross=True),
}


def _routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every operation the REST routers publish (by their OpenAPI tags)."""
    out = set()
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if set(op.get("tags", ())) & TAGS:
                out.add((method.upper(), path))
    return out


@dataclass
class Tenant:
    client: llmbase.LLMBase
    ids: dict[str, str]


def _seed(root: llmbase.LLMBase, slug: str, coll: str) -> Tenant:
    tenant = root.admin().tenants.create(slug)
    c = root.tenant(slug)
    user = c.users.create(f"{slug}-user")
    conv = c.conversations.create(title=f"{slug} secret title", user_id=user.id)
    msg = c.conversations.add_message(conv.id, role="user", content=f"{slug} secret", user_id=user.id)
    c.feedback.rate(msg.id, rating="up", user_id=user.id)
    c.collections.create(coll, 3)
    wr = c.collection(coll).add(
        [
            {
                "id": f"{slug}-doc",
                "chunks": [{"text": "B doc", "embedding": [1, 0, 0]}],
                "metadata": {"topic": "b"},
            }
        ]
    )
    lim = c.limits.set(50, window="hour")
    bud = c.budgets.set(10)
    key = c.keys.create(f"{slug}-key", scopes=["read"])
    c.cache.put(CACHE_REQ["request"], {"text": f"{slug} answer"}, model="m")
    c.requests.log(model=f"{slug}-model", latency_ms=7, user_id=user.id)
    with c.run(f"{slug}-agent") as run, run.iteration():
        pass
    c.requests.flush()
    ids = {
        "tenant": str(tenant.id),
        "conversation_id": str(conv.id),
        "message_id": str(msg.id),
        "user": str(user.id),
        "collection": coll,
        "collection_id": str(c.collections.get(coll).id),
        "document_id": str(wr.document_ids[0]),
        "limit_id": str(lim.id),
        "budget_id": str(bud.id),
        "key_id": str(key.key.id),
        "run_id": str(run.id),
    }
    return Tenant(c, ids)


def _snapshot(t: Tenant) -> dict[str, Any]:
    c, ids = t.client, t.ids
    return {
        "conversation": c.conversations.get(ids["conversation_id"]),
        "messages": c.conversations.history(ids["conversation_id"]),
        "feedback": c.feedback.summary(ids["message_id"]),
        "users": c.users.list().items,
        "collections": c.collections.list(),
        "documents": c.collection(ids["collection"]).documents().items,
        "limits": c.limits.list(),
        "budgets": c.budgets.list(),
        "keys": c.keys.list(include_revoked=True),
        "settings": c.settings.get(),
        "cache": c.cache.stats(),
        "today": c.reports.today(),
    }


def _fill(value: Any, subst: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: subst.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _fill(v, subst) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, subst) for v in value]
    return value


def _call(api: TestClient, method: str, path: str, row: Row, subst: dict[str, str], key: str | None) -> Any:
    return api.request(
        method,
        _fill(path, subst),
        json=_fill(row.body, subst) if row.body is not None else None,
        files=[("files", ("a.md", b"# A\n\nfrom A", "text/markdown"))] if row.upload else None,
        params=_fill(row.params, subst) if row.params else None,
        headers={"Authorization": f"Bearer {key}"} if key else None,
    )


@pytest.fixture
def world(client: llmbase.LLMBase) -> tuple[Tenant, Tenant]:
    a = _seed(client, "acme", "a-kb")
    b = _seed(client, "globex", "b-kb")
    return a, b


def test_table_names_every_route(client: llmbase.LLMBase) -> None:
    routes = _routes(create_app(client))
    assert routes == set(TABLE), (routes - set(TABLE), set(TABLE) - routes)


def test_cross_tenant_404_no_leaks_no_writes(client: llmbase.LLMBase, world: tuple[Tenant, Tenant]) -> None:
    a, b = world
    admin_a = a.client.keys.create("a-admin", scopes=["admin"]).secret
    before = _snapshot(b)
    b_values = [v for k, v in b.ids.items() if k != "collection"] + ["globex secret", "globex answer"]
    a_subst = {**a.ids, "a_user": a.ids["user"], "b_user": b.ids["user"], "b_conv": b.ids["conversation_id"]}
    missing = {
        **a_subst,
        **{
            k: str(uuid.uuid4())
            for k in (
                "conversation_id",
                "message_id",
                "user",
                "document_id",
                "limit_id",
                "budget_id",
                "key_id",
                "run_id",
            )
        },
        "collection": "no-such-collection",
    }
    b_subst = {**a_subst, **{k: v for k, v in b.ids.items()}}
    problems: list[str] = []
    with TestClient(create_app(client), raise_server_exceptions=False) as api:
        for (method, path), row in sorted(TABLE.items()):
            if row.cross:
                got = _call(api, method, path, row, b_subst, admin_a)
                ref = _call(api, method, path, row, missing, admin_a)
                if got.status_code != 404 or ref.status_code != 404:
                    problems.append(
                        f"{method} {path}: B's {got.status_code} missing {ref.status_code} {got.text}"
                    )
                    continue
                g, r = got.json()["error"], ref.json()["error"]
                if (g["code"], g["field"], sorted(g)) != (r["code"], r["field"], sorted(r)):
                    problems.append(f"{method} {path}: {g} vs {r}")
                # The 404's message names the id A sent: an echo of the request, not a leak.
                sent = repr((path, row.body, row.params))
                leak_text = got.text
                for k, v in b.ids.items():
                    if "{" + k + "}" in sent or (k == "user" and "{b_user}" in sent):
                        leak_text = leak_text.replace(v, "")
            else:
                resp = _call(api, method, path, row, a_subst, admin_a)
                if resp.status_code >= 500:
                    problems.append(f"{method} {path}: {resp.status_code} {resp.text}")
                leak_text = resp.text
            for v in b_values:
                if v in leak_text:
                    problems.append(f"{method} {path}: leaks {v!r}")
        # Lists seen by A include A's own rows (the leak check is not vacuous).
        head = {"Authorization": f"Bearer {admin_a}"}
        assert a.ids["conversation_id"] in api.get("/v1/conversations", headers=head).text
        assert "a-kb" in api.get("/v1/collections", headers=head).text
    b.client.requests.flush()
    assert _snapshot(b) == before  # 0 writes
    assert not problems, "\n".join(problems)


def test_scopes_are_enforced_on_every_route(client: llmbase.LLMBase) -> None:
    keys = {s: client.keys.create(s, scopes=[s]).secret for s in ("read", "write", "ingest")}
    subst = {
        k: str(uuid.uuid4())
        for k in (
            "conversation_id",
            "message_id",
            "user",
            "document_id",
            "limit_id",
            "budget_id",
            "key_id",
            "a_user",
            "b_user",
            "b_conv",
        )
    }
    subst["collection"] = "kb"
    allowed: dict[str, Callable[[str], bool]] = {
        "read": lambda need: need == "read",
        "write": lambda need: need == "write",  # write does not imply read (server/auth.py)
        "ingest": lambda need: need == "ingest",
    }
    problems: list[str] = []
    with TestClient(create_app(client), raise_server_exceptions=False) as api:
        for (method, path), row in sorted(TABLE.items()):
            for scope, key in keys.items():
                r = _call(api, method, path, row, subst, key)
                if allowed[scope](row.scope):
                    if r.status_code == 403 or r.status_code >= 500:
                        problems.append(f"{scope} key {method} {path}: {r.status_code} {r.text}")
                elif r.status_code != 403 or r.json()["error"]["code"] != "forbidden":
                    problems.append(f"{scope} key {method} {path}: {r.status_code}, expected 403")
            anon = _call(api, method, path, row, subst, key=None)
            if anon.status_code != 401:
                problems.append(f"no key {method} {path}: {anon.status_code}")
    assert not problems, "\n".join(problems)


def test_a_users_key_sees_only_its_own_rows(client: llmbase.LLMBase) -> None:
    """Within a tenant, a key made for a user acts as that user: another user's
    conversation is a 404 like a missing one, lists leave it out, writes do not reach it."""
    alice, bob = client.user("alice"), client.user("bob")
    mine = alice.conversations.create(title="alice's")
    theirs = bob.conversations.create(title="bob's")
    msg = bob.conversations.add_message(theirs.id, role="user", content="bob's secret")
    key = client.keys.create("alice", scopes=["read", "write", "ingest"], user_id=alice.scope().user_id)
    head = {"Authorization": f"Bearer {key.secret}"}
    before = (bob.conversations.get(theirs.id), bob.conversations.history(theirs.id))
    with TestClient(create_app(client)) as api:
        listed = api.get("/v1/conversations", headers=head).json()["items"]
        assert [c["id"] for c in listed] == [str(mine.id)]
        for method, path, body in [
            ("GET", f"/v1/conversations/{theirs.id}", None),
            ("PATCH", f"/v1/conversations/{theirs.id}", {"title": "x"}),
            ("POST", f"/v1/conversations/{theirs.id}/messages", MSG),
            ("GET", f"/v1/messages/{msg.id}", None),
            ("PUT", f"/v1/messages/{msg.id}/feedback", {"rating": "down"}),
            ("DELETE", f"/v1/conversations/{theirs.id}", None),
        ]:
            got = api.request(method, path, json=body, headers=head)
            ref = api.request(
                method,
                path.replace(str(theirs.id), str(uuid.uuid4())).replace(str(msg.id), str(uuid.uuid4())),
                json=body,
                headers=head,
            )
            assert got.status_code == ref.status_code == 404, (method, path, got.text)
            assert got.json()["error"]["code"] == ref.json()["error"]["code"] == "not_found"
            assert "bob's" not in got.text
        r = api.post(
            "/v1/ingest/requests?wait=true", headers=head, json={"records": [{"model": "m", "user": "bob"}]}
        )
        assert r.json()["accepted"] == 1
    assert (bob.conversations.get(theirs.id), bob.conversations.history(theirs.id)) == before
    # the record is alice's, whatever it says
    assert [u.external_id for u in client.reports.cost_by_user()] == ["alice"]
