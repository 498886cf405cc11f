"""Repository location (URL or path) -> backend. New schemes (s3:, sftp:) register here."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable

from medark.errors import UsageError
from medark.storage.base import Backend
from medark.storage.local import LocalBackend
from medark.storage.mem import MemoryBackend
from medark.storage.wrappers.retry import Retrier, RetryBackend

Factory = Callable[[str], Backend]

# RFC 3986 scheme syntax. Anything shaped like a scheme that is not registered is refused,
# so 'sftp+ssh://host/repo' is an error rather than a local directory named 'sftp+ssh:'.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+")


def _local(rest: str) -> Backend:
    if not rest:
        raise UsageError("'local:' needs a path, e.g. local:/srv/backup")
    return LocalBackend(rest)


BACKEND_ATTEMPTS = 7
"""Requests one S3 or rest: call makes at most (MEDARK_BACKEND_ATTEMPTS overrides)."""
BACKEND_DEADLINE = 120.0
"""Seconds after a call began past which no retry starts (MEDARK_BACKEND_DEADLINE)."""


def remote_retrier() -> Retrier:
    """The retry policy of the networked backends, documented in docs/operations.md:
    `BACKEND_ATTEMPTS` attempts, pauses of 0.25-0.5 s doubling up to 5-10 s (equal jitter),
    none that would end past `BACKEND_DEADLINE` seconds."""
    attempts = _setting("MEDARK_BACKEND_ATTEMPTS", BACKEND_ATTEMPTS)
    deadline = _setting("MEDARK_BACKEND_DEADLINE", BACKEND_DEADLINE)
    return Retrier(max(1, int(attempts)), base_delay=0.5, max_delay=10,
                   deadline=max(0.0, deadline))


def _setting(name: str, default: float) -> float:
    value = os.environ.get(name) or ""
    if not value:
        return default
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a number") from None


def _s3(rest: str) -> Backend:
    # botocore costs ~25 MB of RSS and a tenth of a second to import: only S3 users pay it.
    s3 = importlib.import_module("medark.storage.s3")
    # The one retry layer (botocore's own retries are off, see storage/s3.py): the wrapper
    # for data calls, and the same Retrier for the Object Lock calls made past it.
    retrier = remote_retrier()
    return RetryBackend(s3.open_s3(rest, retrier), retrier=retrier)


def _rest(rest: str) -> Backend:
    module = importlib.import_module("medark.storage.rest")
    return RetryBackend(module.RestBackend(rest), retrier=remote_retrier())


_FACTORIES: dict[str, Factory] = {
    "local": _local,
    "mem": lambda _rest: MemoryBackend(),
    "s3": _s3,
    "rest": _rest,
}


def register(scheme: str, factory: Factory) -> None:
    _FACTORIES[scheme] = factory


def open_backend(location: str) -> Backend:
    """'local:/path', '/path' or 'relative/path' open a directory; other schemes by prefix."""
    if not location:
        raise UsageError("no repository given: use --repo or set MEDARK_REPO")
    scheme, sep, rest = location.partition(":")
    # A one-letter scheme is a Windows drive ('C:\\backup'), never a URL scheme.
    if sep and len(scheme) > 1 and scheme in _FACTORIES:
        return _FACTORIES[scheme](rest)
    if sep and _SCHEME.fullmatch(scheme):
        known = ", ".join(sorted(_FACTORIES))
        raise UsageError(
            f"unknown repository scheme {scheme!r} in {location!r}: use one of {known}, "
            "or a path (prefix a relative path containing ':' with './')"
        )
    return LocalBackend(location)
