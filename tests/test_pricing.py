"""Costs: genai-prices for known models, tenant overrides win, unknown models give NULL plus
cost_unknown (never 0); overrides are managed through client.prices and cached per tenant."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import genai_prices
import pytest

import llmbase
from llmbase import pricing
from llmbase.pricing import CATALOG_SOURCE, OVERRIDE_SOURCE, PriceOverride, Pricer, cost_of

USAGE = {"tokens_prompt": 1000, "tokens_completion": 500, "tokens_cached": 200}


def _catalog(model: str, provider: str | None, **usage: int) -> Decimal:
    calc = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider)
    return calc.total_price.quantize(Decimal("1e-10"))


# -- the rules, without a database ---------------------------------------------------------
def test_known_model_priced_as_genai_prices_says() -> None:
    cost = cost_of({"model": "gpt-4o", "provider": "openai", **USAGE})
    expected = _catalog("gpt-4o", "openai", input_tokens=1000, output_tokens=500, cache_read_tokens=200)
    assert cost.usd == expected and not cost.unknown
    assert cost.source == CATALOG_SOURCE == f"genai-prices {genai_prices.__version__}"
    # cached input at the cached rate: cheaper than the same tokens uncached
    uncached = cost_of({"model": "gpt-4o", "provider": "openai", **USAGE, "tokens_cached": 0})
    assert uncached.usd is not None and cost.usd < uncached.usd
    # gpt-4o: $2.50 / $1.25 cached / $10 per MTok
    assert (
        cost.usd
        == (Decimal(800) * Decimal("2.5") + Decimal(200) * Decimal("1.25") + Decimal(500) * 10) / 10**6
    )


def test_anthropic_cache_writes_priced_at_the_write_rate() -> None:
    rec = {
        "model": "claude-3-5-sonnet-latest",
        "provider": "anthropic",
        "tokens_prompt": 1000,
        "tokens_completion": 100,
        "tokens_cached": 100,
        "metadata": {"cache_write_tokens": 100},
    }
    expected = _catalog(
        "claude-3-5-sonnet-latest",
        "anthropic",
        input_tokens=1000,
        output_tokens=100,
        cache_read_tokens=100,
        cache_write_tokens=100,
    )
    assert cost_of(rec).usd == expected


def test_embeddings_transcriptions_and_unknown_providers() -> None:
    emb = cost_of({"model": "text-embedding-3-small", "provider": "openai", "tokens_total": 1_000_000})
    assert emb.usd == Decimal("0.02")
    audio = cost_of({"model": "whisper-1", "provider": "openai", "audio_duration_s": 60.0})
    assert audio.usd == Decimal("0.006")  # $0.36 per hour
    # a provider the catalog does not know (a proxy): priced by model alone
    assert (
        cost_of({"model": "gpt-4o", "provider": "my-gateway", **USAGE}).usd
        == cost_of({"model": "gpt-4o", "provider": "openai", **USAGE}).usd
    )


def test_unknown_model_is_null_and_flagged_never_zero() -> None:
    for rec in (
        {"model": "acme-llm-9000", "provider": "acme", **USAGE},
        {"model": None, **USAGE},
        {"model": "gpt-4o", "status": "success"},  # no usage reported at all
    ):
        cost = cost_of(rec)
        assert cost.usd is None and cost.unknown and cost.source is None


def test_failed_call_without_usage_is_not_billed() -> None:
    cost = cost_of({"model": "gpt-4o", "status": "rate_limited"})
    assert cost.usd is None and not cost.unknown


def test_override_wins_and_provider_specific_beats_any() -> None:
    any_provider = PriceOverride("", "gpt-4o", Decimal(1), Decimal(2), Decimal("0.5"), Decimal(0))
    openai_only = PriceOverride("openai", "gpt-4o", Decimal(3), Decimal(4), None, Decimal("0.001"))
    overrides = {("", "gpt-4o"): any_provider}
    cost = cost_of({"model": "gpt-4o", "provider": "azure", **USAGE}, overrides)
    assert cost.source == OVERRIDE_SOURCE and not cost.unknown
    assert cost.usd == (Decimal(800) * 1 + Decimal(200) * Decimal("0.5") + Decimal(500) * 2) / 10**6
    overrides[("openai", "gpt-4o")] = openai_only
    cost = cost_of({"model": "gpt-4o", "provider": "openai", **USAGE}, overrides)
    # no cached rate: cached tokens at the input rate; plus the per-request fee
    assert cost.usd == (Decimal(1000) * 3 + Decimal(500) * 4) / 10**6 + Decimal("0.001")
    # an override prices a model the catalog does not know
    unknown = PriceOverride("", "acme-llm", Decimal(1), Decimal(1), None, Decimal(0))
    assert cost_of({"model": "acme-llm", **USAGE}, {("", "acme-llm"): unknown}).usd == Decimal("0.0015")


# -- overrides in the database --------------------------------------------------------------
def test_prices_store(client: llmbase.LLMBase) -> None:
    p = client.prices.set("gpt-4o", input_per_mtok=1, output_per_mtok="2.5", cached_input_per_mtok=0.5)
    assert (p.provider, p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok) == (
        "",
        1,
        Decimal("2.5"),
        Decimal("0.5"),
    )
    client.prices.set("gpt-4o", input_per_mtok=3, output_per_mtok=4, provider="openai")
    updated = client.prices.set("gpt-4o", input_per_mtok=2, output_per_mtok=2)  # upsert
    assert updated.input_per_mtok == 2 and updated.updated_at >= p.updated_at
    assert [(x.provider, x.model) for x in client.prices.list()] == [("", "gpt-4o"), ("openai", "gpt-4o")]
    assert client.prices.get("gpt-4o", provider="openai").input_per_mtok == 3
    assert client.prices.delete("gpt-4o", provider="openai") is True
    assert client.prices.delete("gpt-4o", provider="openai") is False
    with pytest.raises(llmbase.NotFound):
        client.prices.get("gpt-4o", provider="openai")
    for bad in (
        {"input_per_mtok": -1, "output_per_mtok": 1},
        {"input_per_mtok": "x", "output_per_mtok": 1},
        {"input_per_mtok": float("nan"), "output_per_mtok": 1},
    ):
        with pytest.raises(llmbase.ValidationError):
            client.prices.set("m", **bad)


def test_prices_are_per_tenant_and_tenant_wide(client: llmbase.LLMBase) -> None:
    client.tenants.create(slug="acme", name="Acme")
    client.prices.set("gpt-4o", input_per_mtok=1, output_per_mtok=1)
    acme = client.tenant("acme")
    assert acme.prices.list() == []
    acme.prices.set("gpt-4o", input_per_mtok=9, output_per_mtok=9)
    assert client.prices.get("gpt-4o").input_per_mtok == 1
    with pytest.raises(llmbase.PermissionDenied):
        acme.user("bob").prices.set("gpt-4o", input_per_mtok=0, output_per_mtok=0)


def test_pricer_loads_overrides_per_tenant_with_ttl(client: llmbase.LLMBase) -> None:
    now = [0.0]
    p = Pricer(client.database, ttl=30, clock=lambda: now[0])
    tid = client.scope().tenant_id
    assert tid is not None
    rec: dict[str, Any] = {"model": "gpt-4o", "provider": "openai", **USAGE}
    p.fill(tid, rec)
    assert rec["cost_source"] == CATALOG_SOURCE

    # set through the SDK in this process: the cache is invalidated at once
    client.prices.set("gpt-4o", input_per_mtok=1, output_per_mtok=1)
    rec = {"model": "gpt-4o", "provider": "openai", **USAGE}
    p.fill(tid, rec)
    assert rec["cost_source"] == OVERRIDE_SOURCE and rec["cost_usd"] == Decimal("0.0015")

    # changed behind the cache's back (another process): seen after the TTL
    with client.database.transaction(llmbase.Scope(tid)) as conn:
        conn.execute("UPDATE llmbase.model_prices SET input_per_mtok = 2")
    rec = {"model": "gpt-4o", "provider": "openai", **USAGE}
    p.fill(tid, rec)
    assert rec["cost_usd"] == Decimal("0.0015")
    now[0] = 31
    rec = {"model": "gpt-4o", "provider": "openai", **USAGE}
    p.fill(tid, rec)
    assert rec["cost_usd"] == Decimal("0.0025")

    # a caller-given cost is kept
    given = {"model": "gpt-4o", "cost_usd": Decimal("9"), **USAGE}
    p.fill(tid, given)
    assert given["cost_usd"] == Decimal("9") and "cost_source" not in given
    assert pricing.pricer(client.database) is pricing.pricer(client.database)


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-mini", "openai"),
        ("gpt-4.1", "openai"),
        ("o3-mini", "openai"),
        ("text-embedding-3-small", "openai"),
        ("claude-sonnet-4-5", "anthropic"),  # tiered above 200k prompt tokens
        ("claude-3-5-haiku-latest", "anthropic"),
        ("gemini-2.5-pro", "google"),  # tiered
        ("deepseek-chat", "deepseek"),
        ("gpt-4o", None),
        ("whisper-1", "openai"),  # priced per audio unit: the catalog's own calculation
    ],
)
def test_per_token_rates_price_exactly_as_the_catalog(model: str, provider: str | None) -> None:
    """The fast path (a model's linear per-token rates) gives the same cost as genai-prices'
    own calculation for every usage, across tiers, cache reads and writes."""
    import random
    from datetime import UTC, datetime

    rng = random.Random(hash((model, provider)) & 0xFFFF)
    day = datetime.now(UTC).date()
    for _ in range(200):
        prompt = rng.choice([0, 1, rng.randint(0, 5000), rng.randint(150_000, 400_000)])
        completion = rng.choice([0, rng.randint(0, 5000)])
        cached = rng.choice([0, rng.randint(0, prompt)]) if prompt else 0
        write = rng.choice([0, rng.randint(0, prompt - cached)]) if prompt > cached else 0
        got = pricing.catalog_cost(
            model, provider, prompt=prompt, completion=completion, cached=cached, cache_write=write
        )
        want = pricing._catalog(model, provider, prompt, completion, cached, write, None, day)
        assert got.usd == want, (prompt, completion, cached, write)
        assert got.unknown is (want is None)


def test_rates_are_used_for_linear_prices_and_refused_for_others() -> None:
    from datetime import UTC, datetime

    day = datetime.now(UTC).date()
    assert isinstance(pricing._rates("gpt-4o", "openai", day), pricing._Rates)
    tiered = pricing._rates("claude-sonnet-4-5", "anthropic", day)
    assert isinstance(tiered, pricing._Rates) and tiered.below == 200_000
    assert tiered.cost(250_000, 10, 0, 0) is None  # above the first tier: the catalog decides
    assert pricing._rates("whisper-1", "openai", day) is None
    assert pricing._rates("no-such-model-xyz", "openai", day) is pricing._NOT_FOUND
    assert pricing.catalog_cost("no-such-model-xyz", "openai", prompt=5, completion=5).unknown
