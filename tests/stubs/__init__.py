"""A local HTTP server speaking the OpenAI and Anthropic wire formats, for driving the
official SDKs in tests (and the instrumentation benchmark) without a network."""

from .server import TEXT, USAGE, StubServer, running_stub

__all__ = ["TEXT", "USAGE", "StubServer", "running_stub"]
