"""Sinks: destinations for the writer's batches (see base.py for the interface)."""

from .base import BatchResult, Sink, SinkRejected, SinkRetry, SinkUnavailable

__all__ = ["BatchResult", "Sink", "SinkRejected", "SinkRetry", "SinkUnavailable"]
