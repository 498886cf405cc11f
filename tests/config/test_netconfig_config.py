"""The `[netconfig]` section (docs/netconfig.md): a valid one loads, each mistake is
named with its key, and the change window decides by local time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from medark.config.loader import load_config
from medark.config.netconfig import in_window, parse_window
from medark.errors import ConfigInvalid

HEAD = """\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/backup"

[systems.his]
owner = "IT"
[[systems.his.sources]]
type = "files"
paths = ["/data"]

[plans.his]
system = "his"
repository = "local"
schedule = "0 2 * * *"
rpo = "1d"
rto = "4h"
retention = { daily = 30 }
"""


def load(tmp_path: Path, body: str) -> object:
    path = tmp_path / "medark.toml"
    path.write_text(HEAD + body)
    return load_config(path)


def test_a_device_list_loads_with_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, """
[netconfig]
repository = "local"
[netconfig.devices.core-sw1]
address = "10.0.0.1"
profile = "huawei"
username = "ro"
password_file = "/etc/medark/sw1"
keep = 30
[netconfig.devices.fw]
profile = "command"
command = "fw-export"
""")
    conf = config.netconfig  # type: ignore[attr-defined]
    assert conf.keep_of("core-sw1") == 30 and conf.keep_of("fw") == 10
    assert conf.devices["core-sw1"].port == 22 and conf.devices["core-sw1"].host_key_checking
    assert conf.timeout.total_seconds() == 30


@pytest.mark.parametrize(("body", "words"), [
    ('keep = 2\n[netconfig.devices.a]\nprofile = "command"\ncommand = "x"', "keep"),
    ('[netconfig.devices.a]\nprofile = "huawei"\naddress = "h"\nusername = "u"',
     "give password_file or key_file"),
    ('[netconfig.devices.a]\nprofile = "juniper"\naddress = "h"\nusername = "u"\n'
     'key_file = "k"', "profile"),
    ('[netconfig.devices.a]\nprofile = "command"', "needs command"),
    ('change_window = "late"\n[netconfig.devices.a]\nprofile = "command"\ncommand = "x"',
     "change window"),
])
def test_mistakes_are_named(tmp_path: Path, body: str, words: str) -> None:
    with pytest.raises(ConfigInvalid, match=words):
        load(tmp_path, '\n[netconfig]\nrepository = "local"\n' + body)


def test_unknown_repository(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="unknown repository 'nas'"):
        load(tmp_path, '\n[netconfig]\nrepository = "nas"\n[netconfig.devices.a]\n'
                       'profile = "command"\ncommand = "x"\n')


@pytest.mark.parametrize(("copies", "line", "words"), [
    ('["nas"]', 'copies = ["nas"]', "netconfig.copies[0]: unknown repository 'nas'"),
    ('["offsite", "local"]', 'copies = ["offsite", "local"]',
     "netconfig.copies[1]: a copy must go to another repository than the versions' own"),
    ('["offsite", "offsite"]', 'copies = ["offsite", "offsite"]', "named twice"),
])
def test_copies_name_other_repositories(tmp_path: Path, copies: str, line: str,
                                        words: str) -> None:
    body = (HEAD + '\n[repositories.offsite]\nsite = "main"\nurl = "/offsite"\n\n'
            f'[netconfig]\nrepository = "local"\ncopies = {copies}\n'
            '[netconfig.devices.a]\nprofile = "command"\ncommand = "x"\n')
    path = tmp_path / "medark.toml"
    path.write_text(body)
    number = body.splitlines().index(line) + 1
    with pytest.raises(ConfigInvalid) as raised:
        load_config(path)
    assert f"{path}:{number}:" in str(raised.value) and words in str(raised.value)


def test_copies_load(tmp_path: Path) -> None:
    config = load(tmp_path, '\n[repositories.offsite]\nsite = "main"\nurl = "/offsite"\n'
                            '\n[netconfig]\nrepository = "local"\ncopies = ["offsite"]\n'
                            '[netconfig.devices.a]\nprofile = "command"\ncommand = "x"\n')
    assert config.netconfig.copies == ["offsite"]  # type: ignore[attr-defined]


def test_change_windows() -> None:
    assert parse_window("Sat 22:00-06:00")[0] == 5
    saturday_night = datetime(2026, 12, 5, 23, 0)  # a Saturday
    sunday_early = datetime(2026, 12, 6, 5, 59)
    sunday_late = datetime(2026, 12, 6, 23, 0)
    assert in_window("Sat 22:00-06:00", saturday_night)
    assert in_window("Sat 22:00-06:00", sunday_early)
    assert not in_window("Sat 22:00-06:00", sunday_late)
    assert in_window("01:00-05:00", datetime(2026, 12, 2, 1, 0))
    assert not in_window("01:00-05:00", datetime(2026, 12, 2, 5, 0))
