"""Controlling an HAProxy in front of a database: the `haproxy` client switch of a DR switch.

Clients keep one address (HAProxy's frontend); a switch moves the backend's traffic from
the old primary's server to the new one's through the runtime API (`stats socket PATH
level admin`): the new server is made `ready`, the old one put in `maint` and its sessions
shut down so its clients reconnect, through HAProxy, to the new primary.

The API is used in its non-interactive mode: one command per connection, the answer read
to EOF. State-changing commands answer nothing on success, so any text is a failure.
`show servers state` is parsed by its header's column names (format version 1).
"""

from __future__ import annotations

import re
import socket as sock
from dataclasses import dataclass
from typing import Literal

from medark.errors import DatabaseUnavailable, UsageError

State = Literal["ready", "drain", "maint"]
OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}
# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced/inherited/config/resolution/
# hostname maintenance, forced/inherited drain.
_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
_DRAIN = 0x08 | 0x10
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_UNKNOWN = ("No such backend", "Can't find backend", "No such server")


@dataclass(frozen=True)
class ServerState:
    """One server of a backend as `show servers state` reports it."""

    backend: str
    server: str
    address: str
    port: int | None
    op_state: int
    """srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping."""
    admin_state: int
    """srv_admin_state: the SRV_ADMF_* bits (0: ready)."""

    @property
    def admin(self) -> State:
        """What `set server ... state` last made it: maint wins over drain."""
        if self.admin_state & _MAINT:
            return "maint"
        return "drain" if self.admin_state & _DRAIN else "ready"

    @property
    def operational(self) -> str:
        return OP_STATES.get(self.op_state, str(self.op_state))


def _address(spec: str) -> tuple[int, str | tuple[str, int]]:
    """HAProxy's socket spellings: a path, unix@PATH, abns@NAME, ipv4@H:P, ipv6@H:P, H:P."""
    proto, at, rest = spec.partition("@")
    if not at:
        proto, rest = "", spec
    if proto == "unix" or (not proto and (rest.startswith("/") or ":" not in rest)):
        return sock.AF_UNIX, rest
    if proto == "abns":
        return sock.AF_UNIX, "\0" + rest
    host, _, port = rest.rpartition(":")
    if proto not in ("", "ipv4", "ipv6", "tcp", "tcp4", "tcp6") or not port.isdigit():
        raise UsageError(f"cannot read the haproxy socket address {spec!r}")
    host = host.strip("[]")
    family = sock.AF_INET6 if proto in ("ipv6", "tcp6") or ":" in host else sock.AF_INET
    return family, (host, int(port))


def _name(kind: str, value: str) -> str:
    """Names go into commands unquoted; refuse anything that could split one."""
    if not _NAME.match(value):
        raise UsageError(f"invalid haproxy {kind} name {value!r}")
    return value


class HaproxyRuntime:
    """HAProxy's runtime API at `socket` (the `stats socket` of its global section)."""

    def __init__(self, socket: str, timeout: float = 5.0) -> None:
        self.socket = socket
        self.timeout = timeout
        self._family, self._addr = _address(socket)

    def command(self, text: str) -> str:
        """Send one command, return the whole answer (HAProxy closes after it)."""
        if "\n" in text or ";" in text:
            raise UsageError(f"one haproxy command at a time, not {text!r}")
        try:
            with sock.socket(self._family, sock.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(self._addr)
                conn.sendall(text.encode() + b"\n")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except TimeoutError:
            raise DatabaseUnavailable(f"the haproxy runtime API at {self.socket} did not "
                                      f"answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot reach the haproxy runtime API at "
                                      f"{self.socket}: {exc.strerror or exc}") from None
        return b"".join(chunks).decode(errors="replace")

    def _checked(self, text: str, what: str) -> str:
        """Run a command; an unknown name or any refusal becomes one line."""
        answer = self.command(text)
        first = answer.strip().splitlines()[0].rstrip(".") if answer.strip() else ""
        if first.startswith(_UNKNOWN):
            missing = "backend" if "backend" in first else "server"
            raise UsageError(f"haproxy at {self.socket}: {what}: no such {missing}")
        if first.startswith(("Unknown command", "Permission denied")):
            hint = " (the stats socket needs level admin)" if first[0] == "P" else ""
            raise DatabaseUnavailable(f"haproxy at {self.socket} refused {text!r}: "
                                      f"{first.split(',')[0]}{hint}")
        return answer

    def _change(self, text: str, what: str) -> None:
        answer = self._checked(text, what).strip()
        if answer:
            raise DatabaseUnavailable(f"haproxy at {self.socket} refused {text!r}: "
                                      f"{answer.splitlines()[0]}")

    def server_state(self, backend: str, server: str) -> ServerState:
        what = f"{backend}/{_name('server', server)}"
        answer = self._checked(f"show servers state {_name('backend', backend)}", what)
        columns: list[str] = []
        for line in answer.splitlines():
            if line.startswith("#"):
                columns = line[1:].split()
                continue
            row = dict(zip(columns, line.split(), strict=False))
            if row.get("be_name") == backend and row.get("srv_name") == server:
                try:
                    port = row.get("srv_port", "-")
                    return ServerState(backend, server, row["srv_addr"],
                                       int(port) if port.isdigit() else None,
                                       int(row["srv_op_state"]), int(row["srv_admin_state"]))
                except (KeyError, ValueError):
                    raise DatabaseUnavailable(f"haproxy at {self.socket}: cannot read the "
                                              f"state of {what}: {line[:120]!r}") from None
        if not columns:
            raise DatabaseUnavailable(f"haproxy at {self.socket}: unexpected answer to show "
                                      f"servers state: {answer.strip()[:120]!r}")
        raise UsageError(f"haproxy at {self.socket}: {what}: no such server")

    def set_state(self, backend: str, server: str, state: State) -> None:
        if state not in ("ready", "drain", "maint"):
            raise UsageError(f"a haproxy server state is ready, drain or maint, not {state!r}")
        target = f"{_name('backend', backend)}/{_name('server', server)}"
        self._change(f"set server {target} state {state}", target)

    def shutdown_sessions(self, backend: str, server: str) -> None:
        """End the server's sessions: their clients reconnect to whichever server is up."""
        target = f"{_name('backend', backend)}/{_name('server', server)}"
        self._change(f"shutdown sessions server {target}", target)


def switch_to(runtime: HaproxyRuntime, backend: str, new_server: str,
              old_server: str) -> tuple[ServerState, ServerState]:
    """Move `backend`'s traffic from `old_server` to `new_server`; their states after.

    Both names are checked before anything changes. The new server is made ready first,
    so clients ended on the old one find it when they reconnect. The new server's
    operational state is not awaited: with health checks it may be `stopped` until its
    first check passes, and the DR health checks judge the new primary anyway."""
    if new_server == old_server:
        raise UsageError(f"haproxy switch of {backend}: the new and the old server are "
                         f"both {new_server!r}")
    runtime.server_state(backend, new_server)
    runtime.server_state(backend, old_server)
    runtime.set_state(backend, new_server, "ready")
    runtime.set_state(backend, old_server, "maint")
    runtime.shutdown_sessions(backend, old_server)
    new = runtime.server_state(backend, new_server)
    old = runtime.server_state(backend, old_server)
    if new.admin != "ready" or old.admin != "maint":
        raise DatabaseUnavailable(
            f"haproxy at {runtime.socket} did not take the switch of {backend}: "
            f"{new_server} is {new.admin}, {old_server} is {old.admin}")
    return new, old
