"""The dashboard in a real browser: Debian's headless chromium (Playwright, sync API) against
a real uvicorn server on data seeded through the SDK. Every page loads without console
errors, shows the SDK's numbers, filters work, and leaves a screenshot under
test-artifacts/dashboard/. A missing chromium fails the run (it never skips)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

import llmbase
from llmbase.documents.rows import ChunkInput, DocumentInput
from llmbase.server.app import create_app

CHROMIUM = os.environ.get("LLMBASE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet")
N_REQUESTS = 45
MARKER = "raw-response-marker-7f3a"


@dataclass
class Seeded:
    url: str
    key: str
    client: llmbase.LLMBase
    acme: llmbase.LLMBase
    latencies: list[float] = field(default_factory=list)
    by_model: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    conversation_title: str = "Refund policy question"
    run_name: str = "research-agent"


# -- data ----------------------------------------------------------------------------------------
def _seed_requests(acme: llmbase.LLMBase, other: llmbase.LLMBase, s: Seeded) -> None:
    now = datetime.now(UTC)
    for i in range(N_REQUESTS):
        model = MODELS[i % 3]
        status = "error" if i % 7 == 0 else "success"
        latency = 80.0 + 37.0 * i
        s.latencies.append(latency)
        s.by_model[model] = s.by_model.get(model, 0) + 1
        s.errors += status == "error"
        acme.requests.log(
            created_at=now - timedelta(minutes=25 * i + 1),
            request_type="embedding" if i % 9 == 0 else "chat",
            provider="anthropic" if model.startswith("claude") else "openai",
            model=model,
            user=("alice", "bob", "carol")[i % 3 if i % 4 else 0],
            status=status,
            error_kind="RateLimitError" if status == "error" else None,
            error_message="rate limited by the provider" if status == "error" else None,
            latency_ms=latency,
            tokens_prompt=100 + i,
            tokens_completion=50,
            tokens_total=150 + i,
            cost_usd=Decimal("0.0125") * (i % 5 + 1),
            request_body={"messages": [{"role": "user", "content": f"question {i}"}]},
            response_body={"choices": [{"message": {"content": f"{MARKER} answer {i}"}}]},
        )
    for _ in range(5):  # another tenant: never shown to acme
        other.requests.log(request_type="chat", model="gpt-4o", latency_ms=5.0, cost_usd="9.99")
    assert acme.requests.flush(timeout=30) and other.requests.flush(timeout=30)


def _seed_rest(acme: llmbase.LLMBase, s: Seeded) -> None:
    alice = acme.user("alice")
    conv = alice.conversations.create(title=s.conversation_title, model="gpt-4o")
    alice.conversations.add_message(conv.id, role="user", content="Can I get a refund after 10 days?")
    reply = alice.conversations.add_message(
        conv.id, role="assistant", content="Yes: refunds are issued within 14 days of purchase."
    )
    alice.feedback.rate(reply.id, rating="up", comment="very helpful")
    acme.conversations.create(title="Empty chat")

    with acme.run(s.run_name) as run:
        for n in (1, 2, 3):
            with run.iteration() as it:
                it.add_api(120.0 * n)
                it.add_tool(40.0 * n)
                with it.tool("web_search"):
                    pass
    req = {"messages": [{"role": "user", "content": "cached question"}]}
    acme.cache.put(req, {"choices": []}, provider="openai", model="gpt-4o", cost_usd="0.02")
    for _ in range(2):
        assert acme.cache.get(req, provider="openai", model="gpt-4o") is not None

    acme.budgets.set("50.00")
    r = acme.budgets.reserve("2.00")
    acme.budgets.settle(r.id, "1.25")

    acme.collections.create("handbook", 3)
    acme.collection("handbook").add(
        [
            DocumentInput(
                chunks=[ChunkInput(content="Refunds are issued within 14 days.", embedding=[1, 0, 0])],
                external_id="refunds",
                title="Refund policy",
            ),
            DocumentInput(
                chunks=[ChunkInput(content="Shipping takes three business days.", embedding=[0, 1, 0])],
                external_id="shipping",
                title="Shipping",
            ),
        ]
    )
    assert acme.requests.flush(timeout=30)


@pytest.fixture(scope="module")
def seeded(module_db_url: str) -> Iterator[Seeded]:
    url = module_db_url
    client = llmbase.connect(url, migrate=False)
    try:
        admin = client.admin()
        admin.tenants.create("acme", name="Acme Corp")
        admin.tenants.create("globex", name="Globex")
        admin.tenants.create("initech", name="Initech")  # no data: the empty states
        acme = client.tenant("acme")
        key = acme.keys.create("dashboard", scopes=["read"]).secret
        s = Seeded(url=url, key=key, client=client, acme=acme)
        _seed_requests(acme, client.tenant("globex"), s)
        _seed_rest(acme, s)
        yield s
    finally:
        client.close()


# -- servers and browser -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def serve() -> Iterator[Any]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(client: llmbase.LLMBase, *, local_admin: bool = False) -> str:
        port = _free_port()
        app = create_app(client, local_admin=local_admin)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def base(seeded: Seeded, serve: Any) -> str:
    url: str = serve(seeded.client)
    return url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(
            f"Debian chromium not found at {CHROMIUM}: run `make chromium` "
            "(apt-get install -y chromium); the dashboard tests never skip"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Console:
    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)


@pytest.fixture
def page(browser: Browser, seeded: Seeded) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('llmbase.apiKey', {seeded.key!r})")
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p, Console(p)
    context.close()


def _open(page: Page, url: str) -> None:
    msgs: list[str] = []
    page.on("console", lambda m: msgs.append(f"{m.type}: {m.text}"))
    page.goto(url)
    try:
        page.wait_for_selector("body[data-ready]", state="attached")
    except Exception:
        raise AssertionError(f"{msgs} {page.content()[:3000]}") from None
    assert page.get_attribute("body", "data-ready") == "1", page.inner_text("#page")


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def _value(page: Page, testid: str) -> float:
    raw = page.get_attribute(f"[data-testid={testid}]", "data-value")
    assert raw not in (None, ""), testid
    return float(raw)


def _usd(v: Decimal) -> str:
    digits = 4 if v and abs(v) < 1 else 2
    return f"${float(v):,.{digits}f}"


# -- tests ---------------------------------------------------------------------------------------
def test_overview_numbers_equal_the_sdk_reports(
    page: tuple[Page, Console], base: str, seeded: Seeded
) -> None:
    p, console = page
    _open(p, f"{base}/ui/overview?range=7d")
    days = seeded.acme.reports.daily(since="7d")
    requests = sum(d.requests for d in days)
    cost = sum((d.cost_usd for d in days), Decimal(0))
    errors = sum(r.errors for r in seeded.acme.reports.error_rate(since="7d"))
    assert requests == N_REQUESTS and errors == seeded.errors  # the SDK saw the seed
    assert _value(p, "kpi-requests") == requests
    assert p.inner_text("[data-testid=kpi-requests] .value") == str(requests)
    assert _value(p, "kpi-errors") == errors
    assert _value(p, "kpi-cost") == pytest.approx(float(cost))
    assert p.inner_text("[data-testid=kpi-cost] .value") == _usd(cost)
    # p50/p95 from merged histograms: within 5% of the exact order statistics
    lat = sorted(seeded.latencies)
    for tid, q in (("kpi-p50", 0.5), ("kpi-p95", 0.95)):
        exact = lat[int(q * (len(lat) - 1))]
        assert _value(p, tid) == pytest.approx(exact, rel=0.05)
    # charts drawn with points, breakdowns listing every model with its count
    for chart in ("requests", "cost", "latency"):
        assert int(p.get_attribute(f"[data-testid=chart-{chart}]", "data-points") or 0) >= 2
        assert p.locator(f"[data-testid=chart-{chart}] canvas").count() == 1
    rows = p.locator("[data-testid=by-model] tbody tr").all_inner_texts()
    assert len(rows) == len(MODELS)
    for model, n in seeded.by_model.items():
        assert any(r.split("\t")[0] == model and r.split("\t")[1] == str(n) for r in rows), rows
    users = p.locator("[data-testid=by-user] tbody tr").all_inner_texts()
    assert {u.split("\t")[0] for u in users} == {"alice", "bob", "carol"}
    assert "Acme Corp" in p.inner_text("[data-testid=tenant]")
    _shot(p, "overview")
    assert console.errors == []


def test_overview_range_switch(page: tuple[Page, Console], base: str, seeded: Seeded) -> None:
    p, console = page
    _open(p, f"{base}/ui/overview?range=24h")
    today = sum(d.requests for d in seeded.acme.reports.hourly(since="24h"))
    assert _value(p, "kpi-requests") == today
    p.click("[data-testid=range] button[data-value='90d']")
    p.wait_for_url("**range=90d")
    p.wait_for_selector("body[data-ready='1']", state="attached")
    assert _value(p, "kpi-requests") == N_REQUESTS
    assert console.errors == []


def test_request_explorer_filters_and_raw_bodies(
    page: tuple[Page, Console], base: str, seeded: Seeded
) -> None:
    p, console = page
    _open(p, f"{base}/ui/requests")
    rows = p.locator("[data-testid=request-row]")
    assert rows.count() == N_REQUESTS  # globex's calls are not listed
    # filter by model
    p.select_option("[data-testid=filter-model]", "gpt-4o-mini")
    p.wait_for_function(
        "n => document.querySelectorAll('[data-testid=request-row]').length === n",
        arg=seeded.by_model["gpt-4o-mini"],
    )
    assert set(t.split("\t")[1] for t in rows.all_inner_texts()) == {"gpt-4o-mini"}
    assert "model=gpt-4o-mini" in p.url
    # and by status
    p.select_option("[data-testid=filter-model]", "")
    p.select_option("[data-testid=filter-status]", "error")
    p.wait_for_function(
        "n => document.querySelectorAll('[data-testid=request-row]').length === n", arg=seeded.errors
    )
    assert set(t.split("\t")[3] for t in rows.all_inner_texts()) == {"error"}
    # nothing matches: the empty state
    p.select_option("[data-testid=filter-request_type]", "image")
    p.wait_for_selector("[data-testid=empty-requests]")
    p.select_option("[data-testid=filter-request_type]", "")
    # the raw request and response of one call
    p.select_option("[data-testid=filter-model]", "")
    p.select_option("[data-testid=filter-status]", "")
    p.wait_for_function(
        "n => document.querySelectorAll('[data-testid=request-row]').length === n", arg=N_REQUESTS
    )
    rows.first.click()
    p.wait_for_selector("[data-testid=response-body]")
    assert MARKER in p.inner_text("[data-testid=response-body]")
    assert "question" in p.inner_text("[data-testid=request-body]")
    _shot(p, "requests")
    assert console.errors == []


def test_conversation_browser_shows_messages_and_feedback(
    page: tuple[Page, Console], base: str, seeded: Seeded
) -> None:
    p, console = page
    _open(p, f"{base}/ui/conversations")
    titles = p.locator("[data-testid=conversation-row]").all_inner_texts()
    assert len(titles) == len(seeded.acme.conversations.list(archived=None).items) == 2
    p.locator("[data-testid=conversation-row]", has_text=seeded.conversation_title).click()
    p.wait_for_selector("[data-testid=message]")
    messages = p.locator("[data-testid=message]").all_inner_texts()
    assert len(messages) == 2 and "refunds are issued" in messages[1]
    assert p.inner_text("[data-testid=message-feedback]").split() == ["▲", "1", "▼", "0"]
    assert "very helpful" in messages[1]
    assert "▲ 1 up" in p.inner_text("[data-testid=conversation-feedback]")
    assert "id=" in p.url  # a link to this conversation
    _shot(p, "conversations")
    assert console.errors == []


def test_runs_timeline_shows_api_vs_tool_time(page: tuple[Page, Console], base: str, seeded: Seeded) -> None:
    p, console = page
    _open(p, f"{base}/ui/runs")
    p.locator("[data-testid=run-row]", has_text=seeded.run_name).click()
    p.wait_for_selector("[data-testid=timeline]")
    assert p.locator("[data-testid=iteration]").count() == 3
    assert p.inner_text("[data-testid=run-api]") == "720 ms"  # 120 + 240 + 360
    assert p.inner_text("[data-testid=run-tool]").startswith("240")  # 40 + 80 + 120 (+ ~0)
    assert p.locator("[data-testid=tool-calls] tbody tr").count() == 3
    assert p.locator("[data-testid=iteration-stats] tbody tr").count() == 3
    _shot(p, "runs")
    assert console.errors == []


def test_cache_page_shows_hit_rate_and_cost_saved(
    page: tuple[Page, Console], base: str, seeded: Seeded
) -> None:
    p, console = page
    _open(p, f"{base}/ui/cache")
    stats = seeded.acme.cache.stats()
    assert stats.hits == 2 and stats.hit_rate is not None
    assert _value(p, "kpi-hit-rate") == pytest.approx(stats.hit_rate)
    assert p.inner_text("[data-testid=kpi-hit-rate] .value") == f"{stats.hit_rate * 100:.1f}%"
    assert _value(p, "kpi-cost-saved") == pytest.approx(float(stats.cost_saved_usd))
    assert _value(p, "kpi-entries") == stats.entries == 1
    _shot(p, "cache")
    assert console.errors == []


def test_budget_page_shows_usage_against_the_cap(
    page: tuple[Page, Console], base: str, seeded: Seeded
) -> None:
    p, console = page
    _open(p, f"{base}/ui/budgets")
    [usage] = seeded.acme.budgets.usage()
    assert p.locator("[data-testid=budget-row]").count() == 1
    assert _value(p, "budget-spent") == pytest.approx(float(usage.spent_usd)) == 1.25
    assert _value(p, "budget-cap") == 50
    assert "$1.25" in p.inner_text("[data-testid=budget-row]")
    _shot(p, "budgets")
    assert console.errors == []


def test_documents_page_lists_collections_and_searches(
    page: tuple[Page, Console], base: str, seeded: Seeded
) -> None:
    p, console = page
    _open(p, f"{base}/ui/documents")
    row = p.inner_text("[data-testid=collections-table] tbody tr")
    assert row.split("\t")[:2] == ["handbook", "2"]
    p.fill("[data-testid=search-box]", "refunds")
    p.click("[data-testid=search-button]")
    p.wait_for_selector("[data-testid=hit]")
    hits = p.locator("[data-testid=hit]").all_inner_texts()
    assert len(hits) == 1 and "Refund policy" in hits[0]
    p.fill("[data-testid=search-box]", "zebra")
    p.click("[data-testid=search-button]")
    p.wait_for_selector("[data-testid=empty-search]")
    _shot(p, "documents")
    assert console.errors == []


def test_api_key_login_and_sign_out(browser: Browser, base: str, seeded: Seeded) -> None:
    context = browser.new_context()
    p = context.new_page()
    console = Console(p)
    try:
        p.goto(f"{base}/ui/overview")
        p.wait_for_selector("#login:not(.hidden)")
        p.fill("#api-key", "llmb_not_a_real_key")
        p.click("#login-form button")
        p.wait_for_selector("#login-error:has-text('not accepted')")
        p.fill("#api-key", seeded.key)
        p.click("#login-form button")
        p.wait_for_selector("body[data-ready='1']", state="attached")
        assert _value(p, "kpi-requests") == N_REQUESTS
        _shot(p, "login")
        p.click("[data-testid=sign-out]")
        p.wait_for_selector("#login:not(.hidden)")
    finally:
        context.close()
    # the only console errors: the browser's notes about the refused (401) session calls
    assert console.errors and all("401" in e for e in console.errors), console.errors


def test_local_admin_mode_needs_no_key(browser: Browser, seeded: Seeded, serve: Any) -> None:
    url = serve(seeded.client, local_admin=True)
    context = browser.new_context()
    p = context.new_page()
    console = Console(p)
    try:
        _open(p, f"{url}/ui/overview?tenant=acme")
        assert _value(p, "kpi-requests") == N_REQUESTS
        assert "Local admin mode" in p.inner_text("#who")
        p.click("[data-testid=nav-requests]")
        p.wait_for_selector("[data-testid=request-row]")
        assert "tenant=acme" in p.url
        _open(p, f"{url}/ui/overview?tenant=initech")
        assert _value(p, "kpi-requests") == 0
        p.wait_for_selector("[data-testid=empty-overview]")
        for name in ("requests", "conversations", "runs", "cache", "budgets", "documents"):
            _open(p, f"{url}/ui/{name}?tenant=initech")
            p.wait_for_selector(f"[data-testid=empty-{name}]")
        _shot(p, "empty-overview")
    finally:
        context.close()
    assert console.errors == []
