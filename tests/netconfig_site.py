"""What the netconfig tests share (tests/e2e/test_netconfig*_cli.py,
tests/service/test_netconfig_service.py): the plan file's parts from `[systems.his]` on
(a files plan a plan file needs, the `[netconfig]` section, a device's section) and a
site: an initialised repository run through the `medark` command. Each test keeps its own
`[catalog]`, `[sites]` and `[repositories]` head, the part that differs between them."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import TEST_KDF, Cli
from medark_command import PASSWORD
from ssh_device import Device


def his_plan(schedule: str = "daily") -> str:
    """System `his` and its files plan on repository `local`: a plan file needs one; its
    paths do not exist, and `schedule` keeps a daemon from running it where that matters."""
    return f"""\
[systems.his]
owner = "IT"
[[systems.his.sources]]
type = "files"
paths = ["/nonexistent"]

[plans.his]
system = "his"
repository = "local"
schedule = "{schedule}"
rpo = "1d"
rto = "1d"
[plans.his.retention]
last = 3

"""


def netconfig_section(known_hosts: Path | str, more: str = "") -> str:
    """`[netconfig]` storing on repository `local`, 20 s a device; `more`: further keys,
    one a line."""
    return f"""\
[netconfig]
repository = "local"
known_hosts = "{known_hosts}"
timeout = "20s"
{more}"""


def key_file(device: Device) -> str:
    """A device section's credentials: the scripted device's client key."""
    return f'key_file = "{device.client_key}"'


def device_section(name: str, port: int | str, credentials: str,
                   profile: str = "huawei") -> str:
    """`[netconfig.devices.NAME]` on loopback as root; `credentials`: its key or password
    lines (and any other key of the device)."""
    return f"""
[netconfig.devices.{name}]
address = "127.0.0.1"
port = {port}
profile = "{profile}"
username = "root"
{credentials}
"""


def new_site(root: Path, repo: Path) -> Cli:
    """`medark` on an initialised repository `repo`, with the tests' KDF, its cache and
    HOME under `root`, no password from the caller's environment, and `root/password`
    holding the password (for a plan file's password_file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_PASSWORD")}
    env.update(TEST_KDF, MEDARK_REPO=str(repo), MEDARK_CACHE_DIR=str(root / "cache"),
               HOME=str(root))
    site = Cli(repo, env)
    site("init")
    (root / "password").write_text(PASSWORD + "\n")
    return site
