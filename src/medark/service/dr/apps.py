"""The application side of a switch: the services at each site, and the hooks (a virtual
IP, a DNS record, a power switch) an operator plugs in.

Services start in `order` (equal orders together) and stop in reverse; a systemd unit
goes through `systemctl`, anything else through its `start`/`stop` command run by
/bin/sh. Each command gets the new primary's address in MEDARK_DR_NEW_PRIMARY_HOST and
MEDARK_DR_NEW_PRIMARY_PORT (and the system in MEDARK_DR_SYSTEM), so one script serves
both sites. A command's output is kept out of the step line except its last line on
failure: it may print anything, including what it should not.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby

from medark.config.dr import Service
from medark.errors import MedarkError

STOP_TIMEOUT = 60.0


class ServiceFailed(MedarkError):
    """A DR service or hook failed; the action's own error class wraps it where it
    matters (a fencing hook is FencingFailed, exit 28)."""


def hook_env(system: str, prefix: str, host: str, port: int) -> dict[str, str]:
    """`MEDARK_DR_<prefix>_HOST/PORT` for a hook, `prefix` NEW_PRIMARY or OLD_PRIMARY."""
    return {"MEDARK_DR_SYSTEM": system, f"MEDARK_DR_{prefix}_HOST": host,
            f"MEDARK_DR_{prefix}_PORT": str(port)}


def run_command(command: str, env: dict[str, str], timeout: float, what: str) -> None:
    """`command` by /bin/sh; ServiceFailed naming `what` unless it exits 0 in time."""
    try:
        done = subprocess.run(["/bin/sh", "-c", command], env={**os.environ, **env},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ServiceFailed(f"{what}: still running after {timeout:g} s") from None
    except OSError as exc:
        raise ServiceFailed(f"{what}: cannot run: {exc.strerror or exc}") from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise ServiceFailed(f"{what}: exit {done.returncode}"
                            + (f": {tail[-1][:200]}" if tail else ""))


def fencing_hook(system: str, command: str, host: str, port: int) -> str:
    """Run the configured fencing hook for the old primary at host:port; FencingFailed
    (exit 28) unless it exits 0, since nothing may be promoted then."""
    from medark.errors import FencingFailed

    try:
        run_command(command, hook_env(system, "OLD_PRIMARY", host, port), STOP_TIMEOUT,
                    "fencing hook")
    except MedarkError as exc:
        raise FencingFailed(str(exc)) from None
    return "hook exited 0"


def systemctl(verb: str, unit: str, timeout: float) -> str:
    run_command(f"systemctl {verb} -- '{unit}'", {}, timeout, f"systemctl {verb} {unit}")
    return f"systemctl {verb} {unit}"


def start_service(service: Service, env: dict[str, str]) -> None:
    timeout = service.start_timeout.total_seconds()
    if service.unit is not None:
        systemctl("start", service.unit, timeout)
    else:
        run_command(str(service.start), env, timeout, f"service {service.name} start")


def stop_service(service: Service, env: dict[str, str]) -> None:
    if service.unit is not None:
        systemctl("stop", service.unit, STOP_TIMEOUT)
    else:
        run_command(str(service.stop), env, STOP_TIMEOUT, f"service {service.name} stop")


def _waves(services: Sequence[Service], reverse: bool) -> list[list[Service]]:
    ordered = sorted(services, key=lambda s: s.order, reverse=reverse)
    return [list(group) for _order, group in groupby(ordered, key=lambda s: s.order)]


def start_all(services: Sequence[Service], env: dict[str, str]) -> list[str]:
    """Start `services` wave by wave (one `order` at a time, a wave's services together);
    the names started. The first failure stops the rest and is raised."""
    return _each(services, env, start_service, reverse=False)


def stop_all(services: Sequence[Service], env: dict[str, str]) -> list[str]:
    """Stop `services` in reverse order; the names stopped."""
    return _each(services, env, stop_service, reverse=True)


def _each(services: Sequence[Service], env: dict[str, str],
          action: Callable[[Service, dict[str, str]], None], reverse: bool) -> list[str]:
    done: list[str] = []
    for wave in _waves(services, reverse):
        with ThreadPoolExecutor(max_workers=len(wave)) as pool:
            futures = [(s, pool.submit(action, s, env)) for s in wave]
            errors = [f.exception() for _s, f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]
        done += [s.name for s, _f in futures]
    return done
