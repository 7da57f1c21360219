"""The HTTP API's shell: authentication by API key (tenant from the key only), scopes,
one error format, the body limit (413 before buffering), local admin mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

import llmbase
from llmbase.server import create_app


@pytest.fixture
def api(client: llmbase.LLMBase) -> Iterator[TestClient]:
    with TestClient(create_app(client, max_body_bytes=1000)) as c:
        yield c


def test_health_needs_no_key(api: TestClient) -> None:
    r = api.get("/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["up_to_date"] is True


def test_the_tenant_comes_from_the_key(client: llmbase.LLMBase, api: TestClient) -> None:
    acme = client.admin().tenants.create("acme")
    key = client.tenant("acme").keys.create("reader", scopes=["read"])
    r = api.get("/v1/whoami", headers={"Authorization": f"Bearer {key.secret}"})
    assert r.status_code == 200, r.text
    assert r.json()["tenant_id"] == str(acme.id) and r.json()["scopes"] == ["read"]
    # X-API-Key works too; a tenant in the query string changes nothing for a key.
    r = api.get("/v1/whoami?tenant=default", headers={"X-API-Key": key.secret})
    assert r.json()["tenant_id"] == str(acme.id)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer llmb_nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"X-API-Key": "llmb_" + "0" * 32 + "_secret"},
    ],
)
def test_missing_or_bad_keys_get_401_in_the_error_format(api: TestClient, headers: dict[str, str]) -> None:
    r = api.get("/v1/whoami", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_and_missing_scope(client: llmbase.LLMBase) -> None:
    app = create_app(client, key_cache_ttl=0)
    key = client.keys.create("ingest only", scopes=["ingest"])
    with TestClient(app) as api:
        r = api.get("/v1/whoami", headers={"Authorization": f"Bearer {key.secret}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        admin_key = client.keys.create("admin", scopes=["admin"])
        ok = api.get("/v1/whoami", headers={"Authorization": f"Bearer {admin_key.secret}"})
        assert ok.status_code == 200
        client.keys.revoke(admin_key.key.id)
        gone = api.get("/v1/whoami", headers={"Authorization": f"Bearer {admin_key.secret}"})
        assert gone.status_code == 401


def test_body_over_the_limit_gets_413_before_it_is_read(client: llmbase.LLMBase) -> None:
    app = create_app(client, max_body_bytes=1000)
    seen: list[int] = []

    @app.post("/t/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    api = TestClient(app)
    h = {"Content-Type": "application/octet-stream"}
    assert api.post("/t/echo", content=b"x" * 1000, headers=h).json() == {"bytes": 1000}
    r = api.post("/t/echo", content=b"x" * 5000, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"y" * 500

    r = api.post("/t/echo", content=chunks(), headers=h)
    assert r.status_code == 413
    assert seen == [1000]  # neither oversize body reached the endpoint


def test_unknown_routes_and_methods_use_the_error_format(api: TestClient) -> None:
    r = api.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.delete("/v1/health")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_local_admin_mode_only_when_enabled(client: llmbase.LLMBase) -> None:
    client.admin().tenants.create("globex")
    with TestClient(create_app(client, local_admin=True)) as api:
        r = api.get("/v1/whoami")
        assert r.status_code == 200 and r.json()["local_admin"] is True
    with TestClient(create_app(client, local_admin=True), client=("203.0.113.9", 5000)) as remote:
        assert remote.get("/v1/whoami").status_code == 401


def test_llmbase_up_serves_the_api(db_url: str) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llmbase.cli", "up", "--port", str(port), "--database-url", db_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["up_to_date"] is True
        # Local admin mode on loopback: no key needed from this machine.
        assert httpx.get(f"http://127.0.0.1:{port}/v1/whoami").json()["local_admin"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/v1" in out
