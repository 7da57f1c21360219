"""Cost of a model call: a tenant's price override, else the maintained `genai-prices` catalog.

Rules (documented in docs/instrumentation.md):
- A caller-given `cost_usd` is kept as it is.
- A tenant override in llmbase.model_prices (USD per million tokens) wins over the catalog;
  provider '' matches any provider; the model must match exactly. cost_source 'override'.
- Otherwise genai-prices prices the usage offline from its bundled data; cost_source names
  its version ('genai-prices 0.2.3').
- Cached input tokens are priced at the cached-input rate (tokens_prompt includes them, as
  OpenAI reports it; the instrumentation normalises Anthropic's usage to the same rule).
- A model nobody prices, or a successful call without any usage, gives cost NULL and
  cost_unknown = true, never 0. A failed call that reported no usage is not billed by the
  providers: cost NULL, cost_unknown false.

Overrides are read per tenant in one query and cached for `ttl` seconds (30 by default);
changes made through `client.prices` in this process take effect at once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import genai_prices

if TYPE_CHECKING:
    import psycopg

    from .db import Database

__all__ = [
    "CATALOG_SOURCE",
    "OVERRIDE_SOURCE",
    "Cost",
    "PriceOverride",
    "Pricer",
    "catalog_cost",
    "cost_of",
    "invalidate",
    "override_cost",
    "pricer",
]

_log = logging.getLogger("llmbase.pricing")

CATALOG_SOURCE = f"genai-prices {genai_prices.__version__}"
OVERRIDE_SOURCE = "override"
_MTOK = Decimal(1_000_000)
_QUANTUM = Decimal("1e-10")  # numeric(20, 10)


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced call: `usd` None means unpriced; `unknown` says why it matters."""

    usd: Decimal | None
    source: str | None
    unknown: bool

    def fields(self) -> dict[str, Any]:
        return {"cost_usd": self.usd, "cost_source": self.source, "cost_unknown": self.unknown}


UNKNOWN = Cost(None, None, True)
UNBILLED = Cost(None, None, False)


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A tenant's price for one model (USD per million tokens, plus a flat per-request fee)."""

    provider: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None
    per_request: Decimal


def _q(value: Decimal) -> Decimal:
    return value.quantize(_QUANTUM)


def override_cost(price: PriceOverride, *, prompt: int, completion: int, cached: int = 0) -> Decimal:
    """Cost under an override; cached prompt tokens at the cached rate (else the input rate)."""
    cached = min(max(cached, 0), max(prompt, 0))
    cached_rate = (
        price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    )
    total = (
        Decimal(prompt - cached) * price.input_per_mtok
        + Decimal(cached) * cached_rate
        + Decimal(completion) * price.output_per_mtok
    ) / _MTOK + price.per_request
    return _q(total)


@dataclass(frozen=True, slots=True)
class _Rates:
    """A catalog price that is linear in the token counts (USD per million tokens), valid for
    calls whose prompt is below `below` tokens (the first tier of a tiered price)."""

    input: Decimal
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    per_request: Decimal
    below: int | None

    def cost(self, prompt: int, completion: int, cached: int, write: int) -> Decimal | None:
        """The price, or None when this call needs the catalog's own calculation."""
        if self.below is not None and prompt >= self.below:
            return None
        if cached + write > prompt or (cached and self.cache_read is None):
            return None
        if (write and self.cache_write is None) or (completion and self.output is None):
            return None
        total = Decimal(prompt - cached - write) * self.input
        if cached:
            total += Decimal(cached) * self.cache_read  # type: ignore[operator]
        if write:
            total += Decimal(write) * self.cache_write  # type: ignore[operator]
        if completion:
            total += Decimal(completion) * self.output  # type: ignore[operator]
        return _q(total / _MTOK + self.per_request)


_NOT_FOUND = object()
_LINEAR = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "requests_kcount"}


def _calc(model: str, provider: str | None, usage: Mapping[str, int | float], at: datetime) -> Any:
    """genai-prices' calculation (provider first, then by model alone); _NOT_FOUND if nobody
    prices the model. Exceptions other than a failed lookup propagate."""
    for provider_id in (provider, None) if provider else (None,):
        try:
            return genai_prices.calc_price(
                genai_prices.Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=at
            )
        except LookupError:
            continue
    return _NOT_FOUND


@functools.lru_cache(maxsize=4096)
def _rates(model: str, provider: str | None, day: date) -> _Rates | object | None:
    """The linear rates of a model on a day, _NOT_FOUND, or None (use the catalog per call).

    genai-prices' own calculation costs ~100 us; a model priced per token (tiers aside) is
    priced here from its rates in ~2 us. Rates are checked against the catalog on two probe
    calls before they are trusted, and tests compare both ways over many usages."""
    at = datetime.combine(day, dtime(12), UTC)
    try:
        calc = _calc(model, provider, {"input_tokens": 1000}, at)
    except Exception:
        return None
    if calc is _NOT_FOUND:
        return _NOT_FOUND  # type: ignore[no-any-return]
    price = calc.model_price
    values = {k: v for k, v in vars(price).items() if v is not None and not k.startswith("_")}
    if any(
        k not in _LINEAR and ("audio" in k or not (k.endswith("_kcount") or k.endswith("_1h_mtok")))
        for k in values
    ):
        return None  # units the rates do not model: keep the catalog's calculation
    below: int | None = None
    plain: dict[str, Decimal] = {}
    for key, value in values.items():
        if isinstance(value, Decimal):
            plain[key] = value
            continue
        tiers = getattr(value, "tiers", None)
        base = getattr(value, "base", None)
        if not isinstance(base, Decimal) or not tiers:
            return None
        first = min(int(t.start) for t in tiers)
        below = first if below is None else min(below, first)
        plain[key] = base
    if "input_mtok" not in plain:
        return None
    rates = _Rates(
        plain["input_mtok"],
        plain.get("output_mtok"),
        plain.get("cache_read_mtok"),
        plain.get("cache_write_mtok"),
        plain.get("requests_kcount", Decimal(0)) / 1000,
        below,
    )
    out = 0 if rates.output is None else 1
    probes = [(1000, 1000 * out, 0, 0), (900, 37 * out, 300 if rates.cache_read is not None else 0, 0)]
    if rates.cache_write is not None:
        probes.append((700, 11 * out, 0, 200))
    for prompt, completion, cached, write in probes:
        usage = {"input_tokens": prompt, "output_tokens": completion}
        if cached:
            usage["cache_read_tokens"] = cached
        if write:
            usage["cache_write_tokens"] = write
        try:
            expected = _calc(model, provider, usage, at)
        except Exception:
            return None
        if expected is _NOT_FOUND or rates.cost(prompt, completion, cached, write) != _q(
            expected.total_price
        ):
            _log.debug("rates of %s/%s do not reproduce the catalog: per-call pricing", provider, model)
            return None
    return rates


@functools.lru_cache(maxsize=8192)
def _catalog(
    model: str,
    provider: str | None,
    prompt: int | None,
    completion: int | None,
    cached: int | None,
    cache_write: int | None,
    audio_seconds: float | None,
    day: date,
) -> Decimal | None:
    usage: dict[str, int | float] = {}
    if prompt is not None:
        usage["input_tokens"] = prompt
    if completion is not None:
        usage["output_tokens"] = completion
    if cached:
        usage["cache_read_tokens"] = cached
    if cache_write:
        usage["cache_write_tokens"] = cache_write
    if audio_seconds is not None and not usage:
        usage["audio_seconds"] = audio_seconds
    at = datetime.combine(day, dtime(12), UTC)
    for provider_id in (provider, None) if provider else (None,):
        try:
            calc = genai_prices.calc_price(
                genai_prices.Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=at
            )
        except LookupError:
            continue  # provider unknown to the catalog: try by model alone
        except Exception:  # inconsistent usage for this model's units
            _log.debug("genai-prices could not price %s/%s", provider, model, exc_info=True)
            return None
        return _q(calc.total_price)
    return None


def catalog_cost(
    model: str,
    provider: str | None = None,
    *,
    prompt: int | None = None,
    completion: int | None = None,
    cached: int | None = None,
    cache_write: int | None = None,
    audio_seconds: float | None = None,
    at: datetime | None = None,
) -> Cost:
    """Price usage from the genai-prices catalog: from the model's per-token rates when its
    price is linear for this call (~2 us), else genai-prices' own calculation (memoised)."""
    day = (at or datetime.now(UTC)).astimezone(UTC).date()
    provider = provider or None
    if prompt is not None or completion is not None:
        rates = _rates(model, provider, day)
        if rates is _NOT_FOUND:
            return UNKNOWN
        if isinstance(rates, _Rates):
            fast = rates.cost(prompt or 0, completion or 0, cached or 0, cache_write or 0)
            if fast is not None:
                return Cost(fast, CATALOG_SOURCE, False)
    usd = _catalog(model, provider, prompt, completion, cached, cache_write, audio_seconds, day)
    return UNKNOWN if usd is None else Cost(usd, CATALOG_SOURCE, False)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cost_of(
    record: Mapping[str, Any], overrides: Mapping[tuple[str, str], PriceOverride] | None = None
) -> Cost:
    """The cost of one request record (llmbase.requests column names) under the rules above."""
    model = record.get("model")
    if not model or not isinstance(model, str):
        return UNKNOWN
    provider = record.get("provider") or ""
    prompt = _int(record.get("tokens_prompt"))
    completion = _int(record.get("tokens_completion"))
    cached = _int(record.get("tokens_cached"))
    audio = record.get("audio_duration_s")
    audio_seconds = float(audio) if isinstance(audio, int | float) and not isinstance(audio, bool) else None
    if prompt is None and completion is None:
        total = _int(record.get("tokens_total"))
        if total is not None:
            prompt = total  # embeddings report a total only: all of it is input
    no_usage = prompt is None and completion is None and audio_seconds is None
    if no_usage and (record.get("status") or "success") != "success":
        return UNBILLED
    if overrides:
        price = overrides.get((provider, model)) or overrides.get(("", model))
        if price is not None and not (no_usage and price.per_request == 0):
            return Cost(
                override_cost(price, prompt=prompt or 0, completion=completion or 0, cached=cached or 0),
                OVERRIDE_SOURCE,
                False,
            )
    if no_usage:
        return UNKNOWN
    meta = record.get("metadata")
    write = _int(meta.get("cache_write_tokens")) if isinstance(meta, Mapping) else None
    at = record.get("created_at")
    return catalog_cost(
        model,
        provider or None,
        prompt=prompt,
        completion=completion,
        cached=cached,
        cache_write=write,
        audio_seconds=audio_seconds,
        at=at if isinstance(at, datetime) else None,
    )


# -- tenant overrides, cached ------------------------------------------------------------
_SELECT = (
    "SELECT tenant_id, provider, model, input_per_mtok, output_per_mtok, cached_input_per_mtok,"
    " per_request FROM llmbase.model_prices WHERE tenant_id = ANY(%s)"
)

Overrides = dict[tuple[str, str], PriceOverride]


class Pricer:
    """Prices request records for one database, caching each tenant's overrides for `ttl` s."""

    def __init__(
        self, db: Database | None, *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self._db = db
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[UUID, tuple[float, Overrides]] = {}
        self._lock = threading.Lock()
        _PRICERS.add(self)

    def invalidate(self, tenant_id: UUID | None = None) -> None:
        with self._lock:
            if tenant_id is None:
                self._cache.clear()
            else:
                self._cache.pop(tenant_id, None)

    def _stale(self, tenant_ids: Iterable[UUID]) -> list[UUID]:
        now = self._clock()
        with self._lock:
            return [t for t in set(tenant_ids) if (hit := self._cache.get(t)) is None or hit[0] <= now]

    def load(self, tenant_ids: Iterable[UUID], conn: psycopg.Connection[Any] | None = None) -> None:
        """Refresh the overrides of the tenants whose cache entry expired, in one query.

        `conn` (the writer's connection, in operator scope) is used when given; otherwise a
        pooled operator-scope transaction. Database errors propagate to the caller.
        """
        stale = self._stale(tenant_ids)
        if not stale:
            return
        if conn is not None:
            rows = conn.execute(_SELECT, (stale,)).fetchall()
        else:
            from .db import ADMIN

            assert self._db is not None, "a Pricer without a database needs conn="
            with self._db.transaction(ADMIN) as c:
                rows = c.execute(_SELECT, (stale,)).fetchall()
        found: dict[UUID, Overrides] = {t: {} for t in stale}
        for tid, provider, model, inp, out, cached, per_request in rows:
            found[tid][(provider, model)] = PriceOverride(provider, model, inp, out, cached, per_request)
        expires = self._clock() + self.ttl
        with self._lock:
            for tid, overrides in found.items():
                self._cache[tid] = (expires, overrides)

    def overrides(self, tenant_id: UUID, conn: psycopg.Connection[Any] | None = None) -> Overrides:
        self.load((tenant_id,), conn)
        with self._lock:
            hit = self._cache.get(tenant_id)
        return hit[1] if hit is not None else {}

    def fill(
        self, tenant_id: UUID, record: dict[str, Any], conn: psycopg.Connection[Any] | None = None
    ) -> None:
        """Set cost_usd, cost_source, cost_unknown on a request record unless it has a cost."""
        self.fill_batch(((tenant_id, record),), conn)

    def fill_batch(
        self, items: Iterable[tuple[UUID, dict[str, Any]]], conn: psycopg.Connection[Any] | None = None
    ) -> None:
        """`fill` for many records: one overrides query for all stale tenants."""
        todo = [(t, r) for t, r in items if r.get("cost_usd") is None]
        if not todo:
            return
        self.load((t for t, _ in todo), conn)
        with self._lock:
            cache = {t: self._cache.get(t, (0.0, {}))[1] for t, _ in todo}
        for tid, record in todo:
            record.update(cost_of(record, cache[tid]).fields())


_PRICERS: weakref.WeakSet[Pricer] = weakref.WeakSet()
_BY_DB: weakref.WeakKeyDictionary[Database, Pricer] = weakref.WeakKeyDictionary()
_BY_DB_LOCK = threading.Lock()


def pricer(db: Database) -> Pricer:
    """The Pricer of a database (one per Database object)."""
    with _BY_DB_LOCK:
        p = _BY_DB.get(db)
        if p is None:
            p = _BY_DB[db] = Pricer(db)
        return p


def invalidate(tenant_id: UUID | None = None) -> None:
    """Forget cached overrides of a tenant (all tenants: None) in every Pricer of the process."""
    for p in list(_PRICERS):
        p.invalidate(tenant_id)
