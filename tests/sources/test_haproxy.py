"""The haproxy client switch: the runtime API moves a backend's traffic from one server
to the other, against a real HAProxy (a throwaway one on free ports) in front of two tiny
TCP servers that answer their own name."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from haproxy_server import HaproxyServer, NameServer, ask, haproxy_bin, read_line

from medark.errors import DatabaseUnavailable, UsageError
from medark.sources.haproxy import HaproxyRuntime, switch_to

pytestmark = pytest.mark.skipif(haproxy_bin() is None,
                                reason="haproxy is not installed (make debs)")


@pytest.fixture()
def proxy() -> Iterator[HaproxyServer]:
    first, second = NameServer("first"), NameServer("second")
    server = HaproxyServer(first.port, second.port)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        first.close()
        second.close()


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_switch_moves_new_connections_and_ends_old_sessions(proxy: HaproxyServer) -> None:
    runtime = HaproxyRuntime(proxy.socket)
    assert ask(proxy.port) == "first"
    before = runtime.server_state("db", "s1")
    assert (before.admin, before.operational, before.address) == ("ready", "running",
                                                                   "127.0.0.1")
    assert before.port == proxy.first_port

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as held:
        assert read_line(held) == "first"
        new, old = switch_to(runtime, "db", "s2", "s1")
        assert read_line(held) == ""  # its session was shut down: the client reconnects

    assert (new.server, new.admin, old.server, old.admin) == ("s2", "ready", "s1", "maint")
    assert {ask(proxy.port) for _ in range(5)} == {"second"}
    assert runtime.server_state("db", "s1").admin == "maint"

    # and back: the switch is symmetric
    switch_to(runtime, "db", "s1", "s2")
    assert ask(proxy.port) == "first"
    assert runtime.server_state("db", "s2").admin == "maint"


def test_set_state_drain_and_tcp_socket(proxy: HaproxyServer) -> None:
    runtime = HaproxyRuntime(f"ipv4@127.0.0.1:{proxy.admin_port}")
    runtime.set_state("db", "s1", "drain")
    assert runtime.server_state("db", "s1").admin == "drain"
    runtime.set_state("db", "s1", "ready")
    assert runtime.server_state("db", "s1").admin == "ready"
    assert HaproxyRuntime(f"unix@{proxy.socket}").server_state("db", "s2").port == \
        proxy.second_port
    with pytest.raises(UsageError) as exc:
        runtime.set_state("db", "s1", "down")  # type: ignore[arg-type]
    assert "ready, drain or maint" in _one_line(exc)


@pytest.mark.parametrize(("backend", "new", "old", "missing"), [
    ("nope", "s2", "s1", "backend"),
    ("db", "s9", "s1", "server"),
    ("db", "s2", "s9", "server"),
])
def test_unknown_backend_or_server_is_one_line_and_changes_nothing(
        proxy: HaproxyServer, backend: str, new: str, old: str, missing: str) -> None:
    runtime = HaproxyRuntime(proxy.socket)
    with pytest.raises(UsageError) as exc:
        switch_to(runtime, backend, new, old)
    text = _one_line(exc)
    assert f"no such {missing}" in text and proxy.socket in text
    assert ask(proxy.port) == "first"
    assert runtime.server_state("db", "s1").admin == "ready"
    wrong = new if new == "s9" else old
    calls: list[Callable[[], None]] = [lambda: runtime.set_state(backend, wrong, "ready"),
                                       lambda: runtime.shutdown_sessions(backend, wrong)]
    for call in calls:
        with pytest.raises(UsageError) as exc:
            call()
        assert f"no such {missing}" in _one_line(exc)


def test_names_that_would_split_a_command_are_refused(proxy: HaproxyServer) -> None:
    runtime = HaproxyRuntime(proxy.socket)
    with pytest.raises(UsageError) as exc:
        runtime.set_state("db", "s1 state maint; shutdown", "ready")
    assert "invalid haproxy server name" in _one_line(exc)
    with pytest.raises(UsageError):
        switch_to(runtime, "db", "s1", "s1")
    assert runtime.server_state("db", "s1").admin == "ready"


def test_a_socket_below_level_admin_is_refused_in_one_line(proxy: HaproxyServer) -> None:
    with pytest.raises(DatabaseUnavailable) as exc:
        switch_to(HaproxyRuntime(proxy.operator_socket), "db", "s2", "s1")
    text = _one_line(exc)
    assert "Permission denied" in text and "level admin" in text
    assert HaproxyRuntime(proxy.socket).server_state("db", "s1").admin == "ready"
    assert ask(proxy.port) == "first"


def test_missing_socket_is_one_line_naming_it(tmp_path: Path) -> None:
    path = str(tmp_path / "no-such.sock")
    with pytest.raises(DatabaseUnavailable) as exc:
        HaproxyRuntime(path).server_state("db", "s1")
    text = _one_line(exc)
    assert path in text and "cannot reach the haproxy runtime API" in text
    port = _closed_port()
    with pytest.raises(DatabaseUnavailable) as exc:
        switch_to(HaproxyRuntime(f"ipv4@127.0.0.1:{port}"), "db", "s2", "s1")
    assert f"127.0.0.1:{port}" in _one_line(exc)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
