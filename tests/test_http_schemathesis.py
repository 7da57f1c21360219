"""Schemathesis against the published OpenAPI document, in process (ASGI), with an admin
key: every operation of the REST routers, generated inputs (positive and negative); 0
server errors and 0 responses that violate their declared schema. Bounded: a few examples
per operation (the `slow` variant runs more)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

import llmbase
from llmbase.server import create_app

TAGS = (
    "^(health|ingest|conversations|feedback|users|documents|reports|runs|cache|limits|admin|opentelemetry)$"
)
CHECKS = [not_a_server_error, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def _run(client: llmbase.LLMBase, examples: int) -> list[str]:
    key = client.keys.create("schemathesis", scopes=["admin"]).secret
    headers = {"Authorization": f"Bearer {key}"}
    conv = client.conversations.create(title="seed")
    user = client.users.create("u")
    client.conversations.add_message(conv.id, role="user", content="hello", user_id=user.id)
    client.collections.create("kb", 3)
    client.collection("kb").add([{"id": "d", "chunks": [{"text": "cats", "embedding": [1, 0, 0]}]}])
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", create_app(client)).include(tag_regex=TAGS)
    failures: list[str] = []
    seen = 0
    for result, mode in itertools.product(schema.get_all_operations(), MODES):
        op = result.ok()
        seen += 1

        @given(case=op.as_strategy(mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:  # negative: an operation without inputs to break
                failures.append(f"{op.method.upper()} {op.path}: no positive example")
        except Exception as exc:  # collect every operation's failure, then fail once
            failures.append(f"{mode.value} {op.method.upper()} {op.path}: {str(exc)[:2000]}")
    assert seen >= 2 * 60
    return failures


def test_api_conforms_to_its_openapi(client: llmbase.LLMBase) -> None:
    failures = _run(client, 4)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_api_conforms_to_its_openapi_long(client: llmbase.LLMBase) -> None:
    failures = _run(client, 60)
    assert not failures, "\n\n".join(failures)
