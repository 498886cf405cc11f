"""Behaviour layered around any backend (retry, fault injection, read-only), so backends
stay small and classify errors without deciding what to do about them."""

from __future__ import annotations

from medark.storage.base import Backend
from medark.storage.wrappers.faulty import FaultyBackend
from medark.storage.wrappers.readonly import ReadOnlyBackend
from medark.storage.wrappers.retry import RetryBackend

__all__ = ["FaultyBackend", "ReadOnlyBackend", "RetryBackend"]

# Checked by mypy: each wrapper is itself a Backend, so wrappers stack in any order.
_WRAPPERS: tuple[type[Backend], ...] = (FaultyBackend, ReadOnlyBackend, RetryBackend)
