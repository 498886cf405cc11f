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
from medark.storage.wrappers.retry import RetryBackend

Factory = Callable[[str], Backend]

# RFC 3986 scheme syntax. Anything shaped like a scheme that is not registered is refused,
# so 'sftp+ssh://host/repo' is an error rather than a local directory named 'sftp+ssh:'.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+")


def _local(rest: str) -> Backend:
    if not rest:
        raise UsageError("'local:' needs a path, e.g. local:/srv/backup")
    return LocalBackend(rest)


def _s3(rest: str) -> Backend:
    # botocore costs ~25 MB of RSS and a tenth of a second to import: only S3 users pay it.
    s3 = importlib.import_module("medark.storage.s3")
    # Dropped connections, throttling and 5xx are retried here with backoff (botocore's
    # own few quick retries come first); a wide-area link gets about half a minute.
    attempts = int(os.environ.get("MEDARK_BACKEND_ATTEMPTS") or 7)
    return RetryBackend(s3.open_s3(rest), attempts=max(1, attempts), base_delay=0.5,
                        max_delay=10)


def _rest(rest: str) -> Backend:
    module = importlib.import_module("medark.storage.rest")
    return RetryBackend(module.RestBackend(rest), attempts=7, base_delay=0.5, max_delay=10)


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
