"""Benchmark: what `llmbase.instrument()` adds to the caller's time per model call.

The official OpenAI and Anthropic SDKs call the local stub server (tests/stubs, run in its
own process like a remote API) while a background thread keeps the writer busy with 1,000
`log()` calls per second into the embedded PostgreSQL (a fresh data dir).

- "added (in-process)": per call, the instrumented call's time minus the time spent inside
  the SDK's own method (a timing shim sits between llmbase's wrapper and the SDK method),
  so network jitter cancels out: this is llmbase's own cost (ids, usage, bodies, enqueue).
- "bare" / "instrumented ... end to end": whole call times, alternating between an
  uninstrumented and an instrumented client, for scale.
- streams (8 chunks, consumed): instrumented minus bare, medians; with the default
  include_usage (llmbase asks for the usage chunk: one more chunk to receive and parse) and
  without it (the stream proxy's own cost).
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai

import llmbase

TESTS = Path(__file__).resolve().parents[1] / "tests"
MSGS: Any = [{"role": "user", "content": "Say hello"}]
WRITER_RATE = 1000  # log() calls per second in the background while measuring


@contextlib.contextmanager
def _stub_process() -> Iterator[str]:
    """The stub server in a child process (it must not share this process's GIL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stubs"], cwd=TESTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


@contextlib.contextmanager
def _busy_writer(db: llmbase.LLMBase) -> Iterator[None]:
    """Keep WRITER_RATE log() calls per second flowing while the benchmark runs."""
    log, stop = db.requests.log, threading.Event()

    def run() -> None:
        nxt = time.perf_counter()
        while not stop.is_set():
            log(request_type="chat", model="gpt-4o-mini", provider="openai", tokens_prompt=10,
                tokens_completion=5, latency_ms=100.0)  # fmt: skip
            nxt += 1.0 / WRITER_RATE
            delay = nxt - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


class _Shim:
    """Sits between the instrumentation wrapper and the SDK method; times the SDK part."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.inner = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.inner = time.perf_counter() - t0


def _shimmed(resource: Any) -> _Shim:
    shim = _Shim(resource.create)
    resource.create = shim
    return shim


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _added(call: Callable[[], Any], shim: _Shim, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0 - shim.inner)
    return out


def _alternate(bare: Callable[[], Any], inst: Callable[[], Any], n: int) -> tuple[list[float], list[float]]:
    a, b = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        bare()
        t1 = time.perf_counter()
        inst()
        t2 = time.perf_counter()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return a, b


def _chat(c: openai.OpenAI) -> Callable[[], Any]:
    return lambda: c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)


def _emb(c: openai.OpenAI) -> Callable[[], Any]:
    return lambda: c.embeddings.create(model="text-embedding-3-small", input="hello")


def _msg(c: anthropic.Anthropic) -> Callable[[], Any]:
    return lambda: c.messages.create(model="claude-3-5-sonnet-latest", max_tokens=64, messages=MSGS)


def _stream(c: openai.OpenAI) -> Callable[[], Any]:
    return lambda: list(c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))


def run(n: int = 2000) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def row(measure: str, xs: list[float], note: str) -> None:
        p50, p99 = round(statistics.median(xs) * 1e6, 1), round(_pct(xs, 0.99) * 1e6, 1)
        rows.append({"measure": measure, "p50_us": p50, "p99_us": p99, "n": len(xs), "note": note})

    def diff(measure: str, bare: list[float], inst: list[float], note: str) -> None:
        p50 = round((statistics.median(inst) - statistics.median(bare)) * 1e6, 1)
        rows.append({"measure": measure, "p50_us": p50, "p99_us": "-", "n": len(inst), "note": note})

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = stack.enter_context(_stub_process())
        db = stack.enter_context(llmbase.connect(data_dir=Path(tmp) / "pg"))
        kw: dict[str, Any] = {"base_url": url + "/v1", "api_key": "k", "max_retries": 0}
        akw: dict[str, Any] = {"base_url": url, "api_key": "k", "max_retries": 0}
        bare_o, inst_o, no_usage = (stack.enter_context(openai.OpenAI(**kw)) for _ in range(3))
        inst_a = stack.enter_context(anthropic.Anthropic(**akw))
        chat_shim, emb_shim = _shimmed(inst_o.chat.completions), _shimmed(inst_o.embeddings)
        msg_shim = _shimmed(inst_a.messages)
        llmbase.instrument(inst_o, db)
        llmbase.instrument(inst_a, db)
        llmbase.instrument(no_usage, db, include_usage=False)
        stack.enter_context(_busy_writer(db))

        warm = (
            _chat(inst_o),
            _emb(inst_o),
            _msg(inst_a),
            _stream(inst_o),
            _stream(bare_o),
            _stream(no_usage),
        )
        for fn in warm:
            for _ in range(50):
                fn()

        note = "instrumented call minus the SDK method's own time"
        row("openai chat.completions.create: added (in-process)", _added(_chat(inst_o), chat_shim, n), note)
        row("openai embeddings.create: added (in-process)", _added(_emb(inst_o), emb_shim, n), note)
        row("anthropic messages.create: added (in-process)", _added(_msg(inst_a), msg_shim, n), note)
        bare, inst = _alternate(_chat(bare_o), _chat(inst_o), n)
        row("openai chat: bare call, end to end", bare, "stub server in another process")
        row("openai chat: instrumented call, end to end", inst, "alternating with the bare call")
        sb, si = _alternate(_stream(bare_o), _stream(inst_o), n // 2)
        row("openai chat stream, 8 chunks: bare", sb, "consumed to the end")
        row("openai chat stream, 8 chunks: instrumented", si, "usage requested, its chunk hidden")
        sb2, sn = _alternate(_stream(bare_o), _stream(no_usage), n // 2)
        diff("stream: added per call, include_usage=True", sb, si, "median difference; one more chunk")
        diff("stream: added per call, include_usage=False", sb2, sn, "median difference; the proxy alone")
        db.requests.flush(timeout=60)
    return rows


if __name__ == "__main__":
    from bench.run import table

    print(table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
