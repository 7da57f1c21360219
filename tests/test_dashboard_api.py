"""The dashboard's JSON endpoints (/ui/api) and pages without a browser: scopes, tenant
isolation (another tenant's objects are 404, like missing ones), bad input is a 4xx in the
one error format (never a 500), the pages and vendored assets are served, and the
dashboard stays out of the OpenAPI spec."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import llmbase
from llmbase.server.app import create_app

VENDOR = Path(llmbase.__file__).parent / "server" / "dashboard" / "static" / "vendor"


@pytest.fixture
def setup(client: llmbase.LLMBase) -> Iterator[dict[str, Any]]:
    admin = client.admin()
    admin.tenants.create("acme")
    admin.tenants.create("globex")
    acme, globex = client.tenant("acme"), client.tenant("globex")
    acme.requests.log(request_type="chat", model="gpt-4o", latency_ms=10.0, cost_usd="0.5")
    gid = globex.requests.log(
        request_type="chat", model="secret-model", latency_ms=10.0, response_body={"x": "globex"}
    )
    assert acme.requests.flush(timeout=20) and globex.requests.flush(timeout=20)
    gconv = globex.conversations.create(title="globex only")
    with globex.run("globex-run") as run, run.iteration():
        pass
    assert globex.requests.flush(timeout=20)
    keys = {
        "read": acme.keys.create("r", scopes=["read"]).secret,
        "ingest": acme.keys.create("i", scopes=["ingest"]).secret,
    }
    with TestClient(create_app(client)) as http:
        yield {
            "http": http,
            "keys": keys,
            "globex_request": gid,
            "globex_conv": gconv.id,
            "globex_run": run.id,
        }


def _get(s: dict[str, Any], path: str, key: str | None = "read", **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {s['keys'][key]}"} if key else {}
    return s["http"].get(path, headers=headers, params=params)


ENDPOINTS = [
    "/ui/api/session",
    "/ui/api/overview",
    "/ui/api/overview/users",
    "/ui/api/requests",
    "/ui/api/requests/facets",
    "/ui/api/conversations",
    "/ui/api/runs",
    "/ui/api/runs/stats",
    "/ui/api/cache",
    "/ui/api/budgets",
    "/ui/api/collections",
]


def test_every_endpoint_needs_a_read_key(setup: dict[str, Any]) -> None:
    for path in ENDPOINTS:
        r = _get(setup, path, key=None)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", path
        r = _get(setup, path, key="ingest")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", path
        assert _get(setup, path).status_code == 200, path


def test_another_tenants_objects_are_missing(setup: dict[str, Any]) -> None:
    missing = str(uuid.uuid4())
    for kind, theirs in (
        ("requests", setup["globex_request"]),
        ("conversations", setup["globex_conv"]),
        ("runs", setup["globex_run"]),
    ):
        a = _get(setup, f"/ui/api/{kind}/{theirs}")
        b = _get(setup, f"/ui/api/{kind}/{missing}")
        assert a.status_code == b.status_code == 404, kind
        assert a.json()["error"]["code"] == b.json()["error"]["code"] == "not_found"
    listed = _get(setup, "/ui/api/requests", range="24h").json()["items"]
    assert [r["model"] for r in listed] == ["gpt-4o"]
    assert _get(setup, "/ui/api/requests/facets").json()["models"] == ["gpt-4o"]
    assert _get(setup, "/ui/api/conversations").json()["items"] == []
    assert _get(setup, "/ui/api/runs").json()["items"] == []
    over = _get(setup, "/ui/api/overview", range="24h").json()
    assert over["totals"]["requests"] == 1 and over["totals"]["cost_usd"] == 0.5
    assert [m["key"] for m in over["by_model"]] == ["gpt-4o"]
    users = _get(setup, "/ui/api/overview/users", range="24h").json()["by_user"]
    assert [(u["user_id"], u["requests"]) for u in users] == [(None, 1)]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/ui/api/overview", {"range": "1y"}, "range"),
        ("/ui/api/overview/users", {"range": ""}, "range"),
        ("/ui/api/requests", {"range": "forever"}, "range"),
        ("/ui/api/requests", {"status": "exploded"}, "status"),
        ("/ui/api/requests", {"request_type": "telepathy"}, "request_type"),
        ("/ui/api/requests", {"limit": "0"}, "limit"),
        ("/ui/api/requests", {"limit": "x"}, "limit"),
        ("/ui/api/requests", {"cursor": "!!not-a-cursor"}, "cursor"),
        ("/ui/api/requests", {"model": "m" * 201}, "model"),
        ("/ui/api/requests/not-a-uuid", {}, "id"),
        ("/ui/api/requests/" + "0192f1a4-5c1e-7000-8000-000000000001", {"at": "yesterday-ish"}, "at"),
        ("/ui/api/conversations", {"limit": "1000"}, "limit"),
        ("/ui/api/collections/nope/search", {}, "q"),
    ],
)
def test_bad_input_is_a_4xx_with_the_field(
    setup: dict[str, Any], path: str, params: dict[str, str], field: str
) -> None:
    r = _get(setup, path, **params)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["field"] == field


def test_unknown_user_and_collection_are_404(setup: dict[str, Any]) -> None:
    assert _get(setup, "/ui/api/requests", user="nobody").status_code == 404
    r = _get(setup, "/ui/api/collections/nope/search", q="x")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert _get(setup, "/ui/api/conversations/not-a-uuid").status_code in (404, 422)
    assert _get(setup, "/ui/api/runs/not-a-uuid").status_code == 422


def test_pages_and_vendored_assets_are_served(setup: dict[str, Any]) -> None:
    http: TestClient = setup["http"]
    r = http.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/overview"
    for page in ("overview", "requests", "conversations", "runs", "cache", "budgets", "documents"):
        r = http.get(f"/ui/{page}")
        assert r.status_code == 200 and "/ui/static/app.js" in r.text
        assert "http://" not in r.text and "https://" not in r.text  # no CDN
    assert http.get("/ui/nothing-here").status_code == 404
    assert http.get("/ui/static/../../app.py").status_code == 404
    assert http.get("/ui/static/vendor/uPlot.LICENSE").status_code == 404  # not served
    js = http.get("/ui/static/vendor/uPlot.iife.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    readme = (VENDOR / "README.md").read_text()
    assert "1.6.32" in readme and hashlib.sha256(js.content).hexdigest() in readme
    assert (VENDOR / "uPlot.LICENSE").read_text().startswith("The MIT License")


def test_the_dashboard_is_not_in_the_openapi_spec(setup: dict[str, Any]) -> None:
    spec = setup["http"].get("/v1/openapi.json").json()
    assert not [p for p in spec["paths"] if p == "/" or p.startswith("/ui")]


def test_request_pages_follow_the_cursor(client: llmbase.LLMBase) -> None:
    ids = [client.requests.log(request_type="chat", model=f"m{i}", latency_ms=1.0) for i in range(5)]
    assert client.requests.flush(timeout=20)
    key = client.keys.create("r", scopes=["read"]).secret
    seen: list[str] = []
    cursor = None
    with TestClient(create_app(client)) as http:
        for _ in range(5):
            params = {"range": "24h", "limit": "2", **({"cursor": cursor} if cursor else {})}
            page = http.get("/ui/api/requests", params=params, headers={"X-API-Key": key}).json()
            seen += [r["id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert sorted(seen) == sorted(str(i) for i in ids) and len(seen) == 5


def test_a_user_key_sees_only_its_users_calls(client: llmbase.LLMBase) -> None:
    for user in ("alice", "bob", "bob"):
        client.requests.log(request_type="chat", model="gpt-4o", user=user, latency_ms=2.0)
    assert client.requests.flush(timeout=20)
    alice = client.user("alice").scope().user_id
    key = client.keys.create("alice", scopes=["read"], user_id=alice).secret
    with TestClient(create_app(client)) as http:
        h = {"Authorization": f"Bearer {key}"}
        rows = http.get("/ui/api/requests", params={"range": "24h"}, headers=h).json()["items"]
        assert [r["user_external_id"] for r in rows] == ["alice"]
        over = http.get("/ui/api/overview", params={"range": "24h"}, headers=h).json()
        assert over["totals"]["requests"] == 1
        users = http.get("/ui/api/overview/users", params={"range": "24h"}, headers=h).json()
        assert [u["external_id"] for u in users["by_user"]] == ["alice"]
