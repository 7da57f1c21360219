"""Spans -> records, and records -> the request log's queue.

The rule for agents (docs/otel.md#agents): within one export, an agent or chain span
(`gen_ai.operation.name` invoke_agent / invoke_workflow, `openinference.span.kind` AGENT or
CHAIN) that has no agent/chain ancestor in the export is a run root; every LLM-call and
tool span below it (at any depth, nested agents included) belongs to that run. A root
with neither becomes no run. The run's LLM calls, by start time, are its iterations 1..n;
a tool span belongs to the iteration of the last LLM call started before it (the first
iteration if none). Iteration k starts with its LLM call and ends with the last of its
call and tools; api_ms is the call's duration, tool_ms the sum of its tools' durations.
Ids are derived from the trace and span ids, so an export sent twice stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .mapping import (
    AGENT,
    LLM,
    TOOL,
    classify,
    identity,
    otel_metadata,
    request_fields,
    span_time,
    stable_id,
    str_attr,
)
from .spans import STATUS_ERROR, Span

__all__ = ["Plan", "Result", "ingest", "plan"]

_MIN_START = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class Result:
    """What became of an export's spans."""

    requests: int = 0
    runs: int = 0
    iterations: int = 0
    tool_calls: int = 0
    ignored: int = 0  # spans that are not GenAI spans (accepted, not stored)
    rejected: int = 0  # GenAI spans that cannot be stored (see `errors`)
    errors: list[str] = field(default_factory=list)

    def message(self) -> str:
        parts = []
        if self.rejected:
            parts.append(f"{self.rejected} span(s) rejected: " + "; ".join(self.errors[:5]))
        if self.ignored:
            parts.append(f"{self.ignored} span(s) without GenAI attributes ignored")
        return ". ".join(parts)


@dataclass
class Plan:
    records: list[tuple[str, dict[str, Any]]]
    result: Result


def _invalid(span: Span) -> str | None:
    if span.start_ns <= 0 or span.end_ns <= 0:
        return f"span {span.span_id}: no start or end time"
    if span.end_ns < span.start_ns:
        return f"span {span.span_id}: ends before it starts"
    start = span_time(span.start_ns)
    if start < _MIN_START or start > datetime.now(UTC) + timedelta(days=1):
        return f"span {span.span_id}: start time {start.isoformat()} out of range"
    return None


def _run_root(span: Span, by_id: dict[tuple[str, str], Span], kinds: dict[int, str | None]) -> Span | None:
    """The top-most agent/chain span above (or at) `span` within the export."""
    root = span if kinds[id(span)] == AGENT else None
    seen = {span.span_id}
    cur = span
    while cur.parent_span_id and cur.parent_span_id not in seen:
        parent = by_id.get((cur.trace_id, cur.parent_span_id))
        if parent is None:
            break
        seen.add(parent.span_id)
        if kinds[id(parent)] == AGENT:
            root = parent
        cur = parent
    return root


def _iterations(llms: list[Span], tools: list[Span]) -> list[tuple[Span | None, list[Span]]]:
    groups: list[tuple[Span | None, list[Span]]] = [(s, []) for s in llms] or [(None, [])]
    for t in tools:
        k = 0
        for i, (s, _) in enumerate(groups):
            if s is not None and s.start_ns <= t.start_ns:
                k = i
        groups[k][1].append(t)
    return groups


def _run_records(
    root: Span, llms: list[Span], tools: list[Span], iteration_of: dict[int, int]
) -> list[tuple[str, dict[str, Any]]]:
    a = root.attributes
    run_id = stable_id("run", root.trace_id, root.span_id, root.start_ns)
    out: list[tuple[str, dict[str, Any]]] = []
    llms.sort(key=lambda s: s.start_ns)
    tools.sort(key=lambda s: s.start_ns)
    groups = _iterations(llms, tools)
    api_ms = sum(s.duration_ms for s in llms)
    tool_ms = sum(s.duration_ms for s in tools)
    ident = identity(root)
    meta: dict[str, Any] = {"otel": otel_metadata(root)}
    if "session_id" in ident:
        meta["session_id"] = ident.pop("session_id")
    failed = root.status_code == STATUS_ERROR or a.get("error.type") is not None
    run: dict[str, Any] = {
        "id": run_id,
        "name": str_attr(a, "gen_ai.agent.name", "gen_ai.workflow.name") or root.name or "agent",
        "status": "error" if failed else "success",
        "error": (root.status_message or str_attr(a, "error.type")) if failed else None,
        "started_at": span_time(root.start_ns),
        "ended_at": span_time(root.end_ns),
        "total_ms": root.duration_ms,
        "iteration_count": len(groups),
        "api_ms": api_ms,
        "tool_ms": tool_ms,
        "metadata": meta,
    }
    if "user" in ident:
        run["user"] = ident["user"]
    if "conversation_id" in ident:
        run["conversation_id"] = ident["conversation_id"]
    out.append(("run", {k: v for k, v in run.items() if v is not None}))
    for n, (call, its_tools) in enumerate(groups, start=1):
        spans = ([call] if call is not None else []) + its_tools
        start = min(s.start_ns for s in spans) if spans else root.start_ns
        end = max(s.end_ns for s in spans) if spans else root.end_ns
        out.append(
            (
                "iteration",
                {
                    "run_id": run_id,
                    "iteration": n,
                    "started_at": span_time(start),
                    "ended_at": span_time(end),
                    "total_ms": max(0, end - start) / 1e6,
                    "api_ms": call.duration_ms if call is not None else 0.0,
                    "tool_ms": sum(t.duration_ms for t in its_tools),
                    "api_calls": 1 if call is not None else 0,
                    "tool_calls": len(its_tools),
                },
            )
        )
        for t in its_tools:
            ta = t.attributes
            failed_t = t.status_code == STATUS_ERROR or ta.get("error.type") is not None
            tool_meta: dict[str, Any] = {"otel": otel_metadata(t)}
            call_id = str_attr(ta, "gen_ai.tool.call.id", "tool_call.id")
            if call_id:
                tool_meta["tool_call_id"] = call_id
            out.append(
                (
                    "tool_call",
                    {
                        "id": stable_id("tool", t.trace_id, t.span_id, t.start_ns),
                        "run_id": run_id,
                        "iteration": n,
                        "name": str_attr(ta, "gen_ai.tool.name", "tool.name") or t.name or "tool",
                        "started_at": span_time(t.start_ns),
                        "duration_ms": t.duration_ms,
                        "status": "error" if failed_t else "success",
                        "error": (t.status_message or str_attr(ta, "error.type") or "error")
                        if failed_t
                        else None,
                        "metadata": tool_meta,
                    },
                )
            )
        if call is not None:
            iteration_of[id(call)] = n
    return out


def plan(spans: list[Span]) -> Plan:
    """The records an export becomes (runs, iterations and tool calls first, then requests)."""
    result = Result()
    kinds: dict[int, str | None] = {}
    by_id: dict[tuple[str, str], Span] = {}
    for s in spans:
        by_id.setdefault((s.trace_id, s.span_id), s)
    spans = list(by_id.values())  # a span sent twice in one export counts once
    for s in spans:
        kind = classify(s)
        if kind is None:
            result.ignored += 1
        else:
            problem = _invalid(s)
            if problem:
                result.rejected += 1
                result.errors.append(problem)
                kind = None
        kinds[id(s)] = kind
    members: dict[int, tuple[Span, list[Span], list[Span]]] = {}
    run_of: dict[int, Span] = {}
    for s in spans:
        kind = kinds[id(s)]
        if kind not in (LLM, TOOL):
            continue
        root = _run_root(s, by_id, kinds)
        if root is None or kinds[id(root)] != AGENT:
            continue
        entry = members.setdefault(id(root), (root, [], []))
        (entry[1] if kind == LLM else entry[2]).append(s)
        run_of[id(s)] = root
    records: list[tuple[str, dict[str, Any]]] = []
    iteration_of: dict[int, int] = {}
    for root, llms, tools in members.values():
        recs = _run_records(root, llms, tools, iteration_of)
        records.extend(recs)
        result.runs += 1
        result.iterations += sum(1 for k, _ in recs if k == "iteration")
        result.tool_calls += sum(1 for k, _ in recs if k == "tool_call")
    for s in spans:
        if kinds[id(s)] != LLM:
            continue
        fields = request_fields(s)
        root = run_of.get(id(s))
        if root is not None:
            fields["run_id"] = stable_id("run", root.trace_id, root.span_id, root.start_ns)
            fields["iteration"] = iteration_of.get(id(s))
        records.append(("request", fields))
        result.requests += 1
    return Plan(records, result)


def ingest(client: Any, spans: list[Span]) -> Result:
    """Enqueue an export's records for `client`'s tenant: requests through
    `client.requests.log()` (redaction, pricing, rollups, idempotency as for any call),
    runs, iterations and tool calls through `llmbase.ingest.api.enqueue`."""
    from ..ingest.api import enqueue

    p = plan(spans)
    for kind, payload in p.records:
        if kind == "request":
            client.requests.log(**payload)
        else:
            enqueue(client, kind, payload)
    return p.result
