"""Fetch a device's configuration over SSH with netmiko (or a local command).

netmiko drives the vendor's interactive CLI: the login banners, the prompt and paging.
Host keys are checked against the configured known_hosts file (paramiko's RejectPolicy:
an unknown or changed key is refused before any credential is sent); every step is
bounded by the device's timeout. Each failure becomes one line naming the device and
what to do (DeviceUnreachable, DeviceHostKeyRejected, DeviceAuthFailed); the password is
read from its file here and is never in argv, a log or a message.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shlex
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medark.errors import (
    DeviceAuthFailed,
    DeviceHostKeyRejected,
    DeviceUnreachable,
    MedarkError,
    UsageError,
)
from medark.sources.netconfig.profiles import Profile

COMMAND_LIMIT = 64 * 1024 * 1024
"""A configuration larger than this is not a configuration."""


@dataclass(frozen=True)
class Target:
    """What a fetch needs: no pydantic model, so this layer stays below config."""

    name: str
    address: str
    port: int
    username: str | None
    password_file: str | None
    key_file: str | None
    known_hosts: str
    host_key_checking: bool
    timeout: float
    command: str | None = None


def read_secret(path: str, device: str) -> str:
    """The first line of a credentials file that only its owner can read."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"device {device}: cannot read password_file {path}: "
                         f"{exc.strerror or exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"device {device}: {path} is readable by its group or others "
                         f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {path}`")
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"device {device}: cannot read password_file {path}: {exc}"
                         ) from None
    return raw.split("\n", 1)[0].rstrip("\r")


def fetch(target: Target, prof: Profile) -> str:
    """The device's configuration as it printed it (still with its volatile lines)."""
    if prof.name == "command":
        return _run_command(target)
    return _fetch_ssh(target, prof)


def _run_command(target: Target) -> str:
    argv = shlex.split(target.command or "")
    if not argv:
        raise UsageError(f"device {target.name}: profile \"command\" needs command")
    try:
        done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=target.timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceUnreachable(f"device {target.name}: {argv[0]} did not finish in "
                                f"{target.timeout:g} s; no version stored") from None
    except OSError as exc:
        raise DeviceUnreachable(f"device {target.name}: cannot run {argv[0]}: "
                                f"{exc.strerror or exc}") from None
    if done.returncode != 0:
        raise DeviceUnreachable(f"device {target.name}: {argv[0]} exited with status "
                                f"{done.returncode}; no version stored")
    if len(done.stdout) > COMMAND_LIMIT:
        raise DeviceUnreachable(f"device {target.name}: {argv[0]} printed more than 64 MiB")
    return done.stdout.decode("utf-8", errors="replace")


def _fetch_ssh(target: Target, prof: Profile) -> str:
    from netmiko import ConnectHandler  # paramiko and netmiko: only when a device is fetched
    from netmiko.exceptions import (
        NetmikoAuthenticationException,
        NetmikoTimeoutException,
        ReadTimeout,
    )

    secret = read_secret(target.password_file, target.name) if target.password_file else None
    where = f"device {target.name} ({target.address}:{target.port})"
    params: dict[str, object] = {
        "device_type": prof.device_type, "host": target.address, "port": target.port,
        "username": target.username or "", "allow_agent": False,
        "conn_timeout": target.timeout, "auth_timeout": target.timeout,
        "banner_timeout": target.timeout, "read_timeout_override": target.timeout,
        "session_log": None, "fast_cli": True,
        "ssh_strict": target.host_key_checking, "system_host_keys": False,
        "alt_host_keys": target.host_key_checking, "alt_key_file": target.known_hosts,
    }
    if target.key_file:
        params.update(use_keys=True, key_file=target.key_file, passphrase=secret,
                      password=None)
    else:
        params.update(use_keys=False, password=secret)
    for attempt in (1, 2):
        try:
            return _session(ConnectHandler, params, prof, target)
        except ReadTimeout as exc:  # a CLI answering slower than the prompt detection
            if attempt == 2:  # waits (a loaded device): once more, then give up
                raise DeviceUnreachable(f"{where}: its CLI did not answer as expected "
                                        f"({_first_line(exc)}); no version stored") from None
        except NetmikoAuthenticationException:
            raise DeviceAuthFailed(f"{where} refused user {target.username!r} with its "
                                   f"{'key' if target.key_file else 'password'}: check the "
                                   "credentials; no version stored") from None
        except NetmikoTimeoutException as exc:
            raise _classify(exc, target, where) from None
        except MedarkError:
            raise
        except Exception as exc:  # anything else from the SSH stack: one line, no trace
            raise DeviceUnreachable(f"{where}: {type(exc).__name__}: {_first_line(exc)}; "
                                    "no version stored") from None
    raise AssertionError("unreachable")


def _session(connect: Any, params: dict[str, object], prof: Profile, target: Target) -> str:
    # opened here rather than by the constructor, which keeps the client to itself when it
    # fails half-way (the shell refused after the login, a banner or prompt timing out
    # under load): every failure path then closes the socket below
    conn = connect(**params, auto_connect=False)
    try:
        conn._open()
        output = conn.send_command(prof.show_config, read_timeout=target.timeout,
                                   strip_prompt=True, strip_command=True)
    finally:
        _log_out(conn)
    return output if isinstance(output, str) else str(output)


def _log_out(conn: Any) -> None:
    """Say goodbye and close, whatever state the session is in. netmiko's own disconnect
    first probes for configuration mode, which costs seconds per device for nothing: a
    fetch never enters it. The filter netmiko hung on its logger for this session's
    secrets goes too (one per device fetched otherwise)."""
    with contextlib.suppress(Exception):  # the device may already have closed the session
        conn.write_channel("quit" + conn.RETURN)
    for name in ("remote_conn", "remote_conn_pre"):  # the channel, then client and socket
        part = getattr(conn, name, None)
        if part is not None:
            with contextlib.suppress(Exception):
                part.close()
            setattr(conn, name, None)
    secrets = getattr(conn, "_secrets_filter", None)
    if secrets is not None:
        logging.getLogger("netmiko").removeFilter(secrets)


def _classify(exc: BaseException, target: Target, where: str) -> MedarkError:
    import paramiko  # type: ignore[import-untyped]

    cause = exc.__context__
    text = str(cause or exc)
    if isinstance(cause, paramiko.BadHostKeyException):
        return DeviceHostKeyRejected(
            f"{where} presented a host key that differs from the one in "
            f"{target.known_hosts}: if the device was replaced, check the new key's "
            "fingerprint on its console and update the file; no version stored")
    if "not found in known_hosts" in text:
        return DeviceHostKeyRejected(
            f"{where}: its host key is not in {target.known_hosts}; add it after checking "
            f"the fingerprint (ssh-keyscan -p {target.port} {target.address}); "
            "no version stored")
    if isinstance(cause, (socket.timeout, TimeoutError)) or "timed out" in text.lower():
        return DeviceUnreachable(f"{where} did not answer within {target.timeout:g} s; "
                                 "no version stored")
    if isinstance(cause, paramiko.ssh_exception.NoValidConnectionsError):
        errors = list(cause.errors.values())
        refused = any(getattr(e, "errno", None) == errno.ECONNREFUSED for e in errors)
        cause = errors[0] if errors and not refused else cause
    else:
        refused = isinstance(cause, ConnectionRefusedError)
    if refused or "refused" in text.lower():
        return DeviceUnreachable(f"{where} refused the connection (is SSH on port "
                                 f"{target.port}?); no version stored")
    return DeviceUnreachable(f"{where} is unreachable: {_first_line(cause or exc)}; "
                             "no version stored")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
