"""One retry layer for S3, counted at a real HTTP server: a call against a store that
answers 503 (or drops every connection) reaches the server exactly the documented number
of times, not botocore's attempts times Medark's; the deadline ends retries early."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import s3_server

from medark.errors import BackendError
from medark.storage.registry import BACKEND_ATTEMPTS, open_backend, remote_retrier

NAME = "data/ab/" + "ab" * 32
UNAVAILABLE = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable'
               b'</Code><Message>Please reduce your request rate.</Message></Error>')
NO_LOCK = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>'
           b'ObjectLockConfigurationNotFoundError</Code><Message>none</Message></Error>')


class Unavailable(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    lock_config_fails: ClassVar[bool] = True

    def _answer(self) -> None:
        Unavailable.requests.append(f"{self.command} {self.path}")
        status, body = 503, UNAVAILABLE
        if self.path.endswith("?object-lock") and not Unavailable.lock_config_fails:
            status, body = 404, NO_LOCK  # a plain bucket; the data requests fail
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def unavailable(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "medark-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "medark-test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    Unavailable.requests = []
    Unavailable.lock_config_fails = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_the_documented_policy() -> None:
    retrier = remote_retrier()
    assert (retrier.attempts, BACKEND_ATTEMPTS) == (7, 7)
    assert retrier.deadline == 120
    assert (retrier.base_delay, retrier.max_delay) == (0.5, 10)


def test_a_503_is_tried_exactly_the_documented_attempts(
        unavailable: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDARK_BACKEND_ATTEMPTS", "3")
    backend = open_backend(f"s3:http://127.0.0.1:{unavailable}/medark-retries/repo")
    with pytest.raises(BackendError, match="ServiceUnavailable") as caught:
        backend.load(NAME)
    # the first request of a read asks whether the bucket locks objects: a 503 there is
    # retried by the same layer, never taken for "no Object Lock"
    assert Unavailable.requests == ["GET /medark-retries?object-lock"] * 3
    assert "gave up after 3 attempts" in " ".join(caught.value.__notes__)

    Unavailable.lock_config_fails = False
    backend = open_backend(f"s3:http://127.0.0.1:{unavailable}/medark-retries/repo")
    Unavailable.requests.clear()
    with pytest.raises(BackendError, match="ServiceUnavailable"):
        backend.load(NAME)
    assert Unavailable.requests == ["GET /medark-retries?object-lock",
                                    *[f"GET /medark-retries/repo/{NAME}"] * 3]
    Unavailable.requests.clear()
    with pytest.raises(BackendError):
        list(backend.list("snapshots/"))
    assert len(Unavailable.requests) == 3
    assert all(r.startswith("GET /medark-retries?list-type=2") for r in Unavailable.requests)

def test_the_deadline_stops_retries_before_the_attempts_run_out(
        unavailable: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDARK_BACKEND_ATTEMPTS", "7")
    monkeypatch.setenv("MEDARK_BACKEND_DEADLINE", "0")  # no pause fits: one attempt
    backend = open_backend(f"s3:http://127.0.0.1:{unavailable}/medark-retries/repo")
    with pytest.raises(BackendError) as caught:
        backend.stat(NAME)
    assert len(Unavailable.requests) == 1
    assert "deadline" in " ".join(caught.value.__notes__)


def test_dropped_connections_are_tried_exactly_the_documented_attempts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "medark-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "medark-test")
    monkeypatch.setenv("MEDARK_BACKEND_ATTEMPTS", "2")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[int] = []

    def drop_each() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)  # the request arrived, the reply never comes
            accepted.append(1)
            conn.close()

    threading.Thread(target=drop_each, daemon=True).start()
    port = listener.getsockname()[1]
    backend = open_backend(f"s3:http://127.0.0.1:{port}/medark-retries/repo")
    try:
        with pytest.raises(BackendError):
            backend.load(NAME)
    finally:
        listener.close()
    assert len(accepted) == 2


@pytest.mark.skipif(s3_server.endpoint() is None, reason="moto's S3 server is not installed")
def test_botocore_itself_makes_one_attempt() -> None:
    url = s3_server.endpoint()
    backend = open_backend(s3_server.new_location(str(url)))
    inner = backend.inner  # type: ignore[attr-defined]
    assert inner.client.meta.config.retries["total_max_attempts"] == 1
