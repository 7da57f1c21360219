"""Estimate a model call's tokens and cost from its request, before it goes out.

Prompt tokens: the characters of the prompt's text (messages / input / system / prompt /
instructions / tools), divided by 4 and rounded up, plus 4 per message (the chat
format's overhead). No tokenizer is used: it would need downloaded vocabularies, and the
estimate only has to be close; inline binary data (images, audio, files as base64 or
data: URLs) is not counted as text.

Output tokens: `max_tokens`, `max_completion_tokens`, `max_output_tokens` (or Anthropic's
legacy `max_tokens_to_sample`) times `n` when the request sets it, else
DEFAULT_OUTPUT_TOKENS. Embeddings have no output tokens.

Cost: the tenant's price override, else the genai-prices catalog (`llmbase.pricing`), for
those token counts; None when the model has no known price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..pricing import PriceOverride, cost_of

__all__ = ["CHARS_PER_TOKEN", "DEFAULT_OUTPUT_TOKENS", "Estimate", "estimate", "prompt_chars"]

CHARS_PER_TOKEN = 4
PER_MESSAGE_TOKENS = 4
DEFAULT_OUTPUT_TOKENS = 1024
_PROMPT_KEYS = ("messages", "input", "system", "prompt", "instructions", "tools", "contents")
_OUTPUT_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_tokens_to_sample")
_BINARY_KEYS = frozenset({"image_url", "data", "file_data", "b64_json", "audio", "input_audio", "url"})
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Estimate:
    prompt_tokens: int
    output_tokens: int
    cost_usd: Decimal | None  # None: no known price

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def _chars(value: Any, depth: int = 0) -> int:
    if isinstance(value, str):
        return 0 if value.startswith("data:") else len(value)
    if depth >= _MAX_DEPTH:
        return 0
    if isinstance(value, Mapping):
        return sum(_chars(v, depth + 1) for k, v in value.items() if k not in _BINARY_KEYS)
    if isinstance(value, list | tuple):
        return sum(_chars(v, depth + 1) for v in value)
    return 0


def prompt_chars(request: Mapping[str, Any]) -> int:
    return sum(_chars(request.get(k)) for k in _PROMPT_KEYS)


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def estimate(
    request: Mapping[str, Any],
    *,
    provider: str | None,
    model: str | None,
    request_type: str,
    overrides: Mapping[tuple[str, str], PriceOverride] | None = None,
) -> Estimate:
    messages = request.get("messages")
    n_messages = len(messages) if isinstance(messages, list | tuple) else 0
    prompt = math.ceil(prompt_chars(request) / CHARS_PER_TOKEN) + PER_MESSAGE_TOKENS * n_messages
    prompt = max(prompt, 1)
    if request_type in ("embedding", "embeddings"):
        output = 0
    else:
        output = next(
            (o for o in (_positive(request.get(k)) for k in _OUTPUT_KEYS) if o is not None),
            DEFAULT_OUTPUT_TOKENS,
        )
        output *= _positive(request.get("n")) or 1
    cost = None
    if model:
        cost = cost_of(
            {
                "model": model,
                "provider": provider or "",
                "tokens_prompt": prompt,
                "tokens_completion": output,
                "status": "success",
            },
            overrides,
        ).usd
    return Estimate(prompt, output, cost)
