"""`medark netconfig` end to end against scripted H3C Comware and Ruijie RGOS devices
(tests/ssh_device.py: a real sshd whose forced command answers as the vendor's CLI does
to what netmiko's `hp_comware` and `ruijie_os` send: Comware's "Press Y or ENTER to
continue" banner and `screen-length disable`, RGOS's `terminal width 256` and
`terminal length 0`, each printing a timestamp line that changes at every fetch). One
plan file names both, so each `fetch` asks both devices at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from netconfig_site import device_section, his_plan, key_file, netconfig_section, new_site
from ssh_device import CONFIGS, Device, can_run_sshd, running_device

pytestmark = pytest.mark.skipif(can_run_sshd() is not None, reason=str(can_run_sshd()))

CONFIG = """\
[catalog]
url = "sqlite:///{root}/catalog.sqlite"

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{root}/password"

"""
CHANGES = {  # vendor: (a line of its configuration, the line it becomes)
    "h3c": (" port access vlan 20", " port access vlan 30"),
    "ruijie": (" switchport access vlan 20", " switchport access vlan 30"),
}
COMMANDS = {  # what netmiko's device type sent before the configuration command
    "h3c": ["screen-length disable", "display current-configuration"],
    "ruijie": ["terminal width 256", "terminal length 0", "show running-config"],
}


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Device]]:
    with running_device(tmp_path_factory.mktemp("h3c"), "h3c") as h3c, \
            running_device(tmp_path_factory.mktemp("ruijie"), "ruijie") as ruijie:
        yield {"h3c": h3c, "ruijie": ruijie}


def test_h3c_and_ruijie_store_a_version_only_for_a_real_change(
        tmp_path: Path, devices: dict[str, Device]) -> None:
    site = new_site(tmp_path, tmp_path / "repo")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(d.known_hosts.read_text() for d in devices.values()))
    body = CONFIG.format(root=tmp_path, repo=site.repo) + his_plan()
    body += netconfig_section(known_hosts)
    for name, dev in devices.items():
        body += device_section(name, dev.port, key_file(dev), profile=name)
    config = tmp_path / "medark.toml"
    config.write_text(body)

    def versions(name: str) -> list[dict[str, object]]:
        found: list[dict[str, object]] = site("netconfig", "versions", name, "--config",
                                              config, "--json").json()
        return found

    before = {name: dev.fetches() for name, dev in devices.items()}
    for _ in range(10):
        site("netconfig", "fetch", "--config", config)
    for name, dev in devices.items():
        assert dev.fetches() - before[name] == 10, name  # each fetch asked the device
        assert len(versions(name)) == 1, name  # the timestamp line changed, nothing else
        sent = [c for c in (dev.dir / "commands.log").read_text().splitlines() if c]
        assert sent[:len(COMMANDS[name])] == COMMANDS[name], (name, sent[:5])
        assert "quit" in sent
    shown = site("netconfig", "show", "h3c", "--config", config).stdout
    assert shown.startswith("#\n#  Last configuration was saved at") and \
        shown.endswith("return\n") and "<H3C>" not in shown and "More" not in shown
    shown = site("netconfig", "show", "ruijie", "--config", config).stdout
    assert shown.startswith("Building configuration...") and shown.endswith("end\n")
    assert "Ruijie#" not in shown and "More" not in shown

    for name, dev in devices.items():
        old, new = CHANGES[name]
        assert old in CONFIGS[name]
        dev.set_config(CONFIGS[name].replace(old, new, 1))
    try:
        done = site("netconfig", "fetch", "--config", config, "--json")
    finally:
        for name, dev in devices.items():
            dev.set_config(CONFIGS[name])
    statuses = {d["device"]: d["status"] for d in map(json.loads, done.stdout.splitlines())}
    assert statuses == {"h3c": "stored", "ruijie": "stored"}
    for name in devices:
        assert len(versions(name)) == 2, name
        diff = site("netconfig", "diff", name, "--config", config).stdout
        changed = [line for line in diff.splitlines()
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        volatile = ("Last configuration was saved", "!Time:", "Current configuration :")
        old, new = CHANGES[name]
        assert [line for line in changed if not any(v in line for v in volatile)] == [
            "-" + old, "+" + new], (name, diff)
