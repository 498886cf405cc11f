"""The SSH fetch (sources/netconfig/ssh.py) in process against the scripted Cisco IOS
device of tests/ssh_device.py (a real sshd, paging until `terminal length 0`), and the
`command` profile: the text comes back without paging or prompts, and two fetches
differ only in volatile lines."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ssh_device import Device, can_run_sshd, running_device

from medark.errors import DeviceHostKeyRejected, DeviceUnreachable, UsageError
from medark.sources.netconfig.profiles import CISCO_IOS, COMMAND, clean, fingerprint
from medark.sources.netconfig.ssh import Target, fetch


@pytest.fixture(scope="module")
def cisco(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    if can_run_sshd() is not None:
        pytest.skip(str(can_run_sshd()))
    with running_device(tmp_path_factory.mktemp("cisco"), "cisco") as dev:
        yield dev


def target(dev: Device, **changes: object) -> Target:
    values: dict[str, object] = dict(
        name="core", address="127.0.0.1", port=dev.port, username="root",
        password_file=None, key_file=str(dev.client_key), known_hosts=str(dev.known_hosts),
        host_key_checking=True, timeout=20.0)
    values.update(changes)
    return Target(**values)  # type: ignore[arg-type]


def test_cisco_running_config_without_paging_and_stable_fingerprint(cisco: Device) -> None:
    first = fetch(target(cisco), CISCO_IOS)
    second = fetch(target(cisco), CISCO_IOS)
    assert "--More--" not in first and "CORE-SW1#" not in clean(first, CISCO_IOS)
    assert "interface GigabitEthernet0/19" in first and first.rstrip().endswith("end")
    assert first != second  # the timestamp and byte count moved
    assert fingerprint(first, CISCO_IOS) == fingerprint(second, CISCO_IOS)
    commands = (cisco.dir / "commands.log").read_text().splitlines()
    assert commands.index("terminal length 0") < commands.index("show running-config")


def test_group_readable_password_file_is_refused(cisco: Device, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not-this\n")
    secret.chmod(0o644)
    with pytest.raises(UsageError, match=r"readable by its group or others \(mode 0644\)"):
        fetch(target(cisco, key_file=None, password_file=str(secret)), CISCO_IOS)


def test_command_profile(tmp_path: Path) -> None:
    script = tmp_path / "export.py"
    script.write_text("print('set system host-name fw1')\nprint('set vlan 10')\n")
    done = fetch(Target("fw", "", 0, None, None, None, "", True, 10.0,
                        command=f"{sys.executable} {script}"), COMMAND)
    assert done == "set system host-name fw1\nset vlan 10\n"
    with pytest.raises(DeviceUnreachable, match="exited with status 3"):
        fetch(Target("fw", "", 0, None, None, None, "", True, 10.0,
                     command=f"{sys.executable} -c 'raise SystemExit(3)'"), COMMAND)


def test_host_key_checking_on_by_default_and_off_when_asked(cisco: Device,
                                                             tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(DeviceHostKeyRejected, match="host key is not in"):
        fetch(target(cisco, known_hosts=str(empty)), CISCO_IOS)
    assert "hostname CORE-SW1" in fetch(
        target(cisco, known_hosts=str(empty), host_key_checking=False), CISCO_IOS)


def _sockets() -> int:
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            found += stat.S_ISSOCK(os.stat(f"/proc/self/fd/{name}").st_mode)
        except OSError:
            continue
    return found


def test_a_session_failing_after_the_login_is_closed(tmp_path: Path) -> None:
    """The shell refused after a successful login (netmiko does not close that client):
    one line, and no socket or logger filter left behind (a ResourceWarning, an error
    under pytest, once seen under 4 test workers)."""
    if can_run_sshd() is not None:
        pytest.skip(str(can_run_sshd()))
    with running_device(tmp_path / "notty", "cisco", sshd_options="PermitTTY no") as dev:
        before, filters = _sockets(), len(logging.getLogger("netmiko").filters)
        with pytest.raises(DeviceUnreachable, match="no version stored"):
            fetch(target(dev, timeout=5.0), CISCO_IOS)
        assert _sockets() == before
        assert len(logging.getLogger("netmiko").filters) == filters
