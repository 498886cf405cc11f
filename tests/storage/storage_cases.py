"""Backend cases for the conformance suite. A new backend (S3, SFTP) is one more entry in
CASES; a case whose service is not reachable should call pytest.skip() in its factory.

A uniquely named module rather than conftest.py, so test modules can import these types
whatever conftest.py files other test directories add."""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import s3_server

from medark.storage.base import Backend
from medark.storage.local import LocalBackend
from medark.storage.mem import MemoryBackend
from medark.storage.rest import RestBackend
from medark.storage.rest_auth import Authenticator, User, hash_password
from medark.storage.rest_server import RepositoryServer
from medark.storage.s3 import open_s3
from medark.storage.wrappers import RetryBackend
from medark.util.files import temp_name


@dataclass
class BackendCase:
    backend: Backend
    leave_partial_write: Callable[[str, bytes], None]
    """Leave behind what a crash in the middle of save(name, data) leaves on this backend."""


def _local(tmp: pytest.TempPathFactory) -> BackendCase:
    root = tmp.mktemp("local") / "repo"  # not created yet: create() must make it

    def partial(name: str, data: bytes) -> None:
        final = root / name
        final.parent.mkdir(parents=True, exist_ok=True)
        temp_name(final).write_bytes(data[: len(data) // 2])

    return BackendCase(LocalBackend(root), partial)


def _nothing(name: str, data: bytes) -> None:
    """A crashed save leaves nothing behind on backends that write in one step."""


def _mem(tmp: pytest.TempPathFactory) -> BackendCase:
    return BackendCase(MemoryBackend(), _nothing)


def _retry_mem(tmp: pytest.TempPathFactory) -> BackendCase:
    # Wrappers must be transparent: a wrapped backend passes the same suite.
    return BackendCase(RetryBackend(MemoryBackend(), sleep=lambda _s: None), _nothing)


def _s3(tmp: pytest.TempPathFactory) -> BackendCase:
    url = s3_server.endpoint()
    if url is None:
        pytest.skip("moto's S3 server is not installed")
    # A crashed PutObject leaves nothing: S3 makes an object visible only when complete.
    return BackendCase(open_s3(s3_server.new_location(url).removeprefix("s3:")), _nothing)


def _rest(tmp: pytest.TempPathFactory) -> BackendCase:
    """`medark serve`'s server in a thread (a `full` user, --full-access) and the rest:
    client."""
    root = tmp.mktemp("served") / "repo"
    admin = User("admin", _admin_hash(), "full")
    server = RepositoryServer(("127.0.0.1", 0), root,
                              Authenticator({"admin": admin}, full_access=True))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    _SERVERS.append(server)
    port = server.server_address[1]

    def partial(name: str, data: bytes) -> None:  # the server writes through LocalBackend
        final = root / name
        final.parent.mkdir(parents=True, exist_ok=True)
        temp_name(final).write_bytes(data[: len(data) // 2])

    return BackendCase(RestBackend(f"http://127.0.0.1:{port}/", ("admin", "admin-token")),
                       partial)


@functools.cache
def _admin_hash() -> str:
    return hash_password("admin-token")


_SERVERS: list[RepositoryServer] = []
atexit.register(lambda: [s.shutdown() for s in _SERVERS])


CASES: dict[str, Callable[[pytest.TempPathFactory], BackendCase]] = {
    "local": _local,
    "mem": _mem,
    "retry+mem": _retry_mem,
    "s3": _s3,
    "rest": _rest,
}

MakeCase = Callable[[], BackendCase]
