"""Typed tenant settings: validation names the field, nothing changes on error, versions guard races."""

from __future__ import annotations

import pytest

import llmbase
from llmbase import ConflictError, ValidationError


def test_defaults_put_patch(client: llmbase.LLMBase) -> None:
    rec = client.settings.get()
    assert rec.version == 0 and rec.settings.retrieval.top_k == 5
    rec = client.settings.put({"default_model": "gpt-4o", "retrieval": {"top_k": 8}})
    assert rec.version == 1 and rec.settings.retrieval.top_k == 8
    rec = client.settings.patch({"temperature": 0.1, "retrieval": {"match_threshold": 0.7}})
    assert rec.version == 2
    assert rec.settings.default_model == "gpt-4o"
    assert rec.settings.retrieval.top_k == 8 and rec.settings.retrieval.match_threshold == 0.7
    assert client.settings.get().settings == rec.settings


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"unknown_key": 1}, "unknown_key"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 5}, "temperature"),
        ({"retrieval": {"top_k": 0}}, "retrieval.top_k"),
        ({"retrieval": {"bogus": True}}, "retrieval.bogus"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"features": {"x": "yes"}}, "features.x"),
        ({"monthly_budget_usd": float("nan")}, "monthly_budget_usd"),
    ],
)
def test_invalid_settings_name_the_field_and_change_nothing(
    client: llmbase.LLMBase, doc: dict[str, object], field: str
) -> None:
    before = client.settings.put({"default_model": "keep-me"})
    with pytest.raises(ValidationError) as e:
        client.settings.put(doc)
    assert e.value.field == field
    after = client.settings.get()
    assert after.version == before.version and after.settings.default_model == "keep-me"


def test_not_an_object_is_rejected(client: llmbase.LLMBase) -> None:
    with pytest.raises(ValidationError) as e:
        client.settings.put(["a", "list"])  # type: ignore[arg-type]
    assert e.value.field == "settings"


def test_expected_version_guards_lost_updates(client: llmbase.LLMBase) -> None:
    v1 = client.settings.put({"language": "en"})
    client.settings.put({"language": "de"}, expected_version=v1.version)
    with pytest.raises(ConflictError):
        client.settings.put({"language": "fr"}, expected_version=v1.version)
    assert client.settings.get().settings.language == "de"


def test_settings_are_per_tenant(client: llmbase.LLMBase) -> None:
    client.tenants.create("other")
    client.tenant("other").settings.put({"language": "ja"})
    assert client.settings.get().settings.language is None
    assert client.tenant("other").settings.get().settings.language == "ja"


def test_users_cannot_write_settings(client: llmbase.LLMBase) -> None:
    with pytest.raises(llmbase.PermissionDenied):
        client.user("intruder").settings.put({"language": "xx"})
