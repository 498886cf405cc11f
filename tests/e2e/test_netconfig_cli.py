"""`medark netconfig` end to end against a scripted network device: Debian's OpenSSH
server on a free loopback port whose forced command is a fake Huawei VRP CLI (prompt,
paging until `screen-length 0 temporary`, a timestamp line new at every fetch),
tests/ssh_device.py. One sshd for the module; each test has its own device names."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Cli
from medark_command import MEDARK
from netconfig_site import device_section, his_plan, netconfig_section, new_site
from ssh_device import HUAWEI_CONFIG, Device, can_run_sshd, running_device

pytestmark = pytest.mark.skipif(can_run_sshd() is not None, reason=str(can_run_sshd()))

CONFIG = """\
[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

"""
SECRET = "s3cret-wrong-Pa55"


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    with running_device(tmp_path_factory.mktemp("device"), "huawei") as dev:
        yield dev


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    root = tmp_path_factory.mktemp("site")
    (root / "state").mkdir()
    return new_site(root, root / "repo")


def write_config(site: Cli, device: Device, name: str, devices: dict[str, str],
                 known_hosts: Path | None = None, keep: int = 10,
                 schedule: str = "0 */4 * * *") -> Path:
    root = site.repo.parent
    body = CONFIG.format(state=root / "state", repo=site.repo,
                         password_file=root / "password") + his_plan()
    body += netconfig_section(known_hosts or device.known_hosts,
                              f'keep = {keep}\nschedule = "{schedule}"\n')
    for dev_name, credentials in devices.items():
        port = credentials.split("|", 1)[0] if "|" in credentials else device.port
        body += device_section(dev_name, port, credentials.split("|", 1)[-1])
    path = root / f"{name}.toml"
    path.write_text(body)
    return path


def versions(site: Cli, config: Path, name: str) -> list[dict[str, object]]:
    out = site("netconfig", "versions", name, "--config", config, "--json").stdout
    result: list[dict[str, object]] = json.loads(out)
    return result


def open_alerts(site: Cli, config: Path) -> set[str]:
    out = site("alerts", "--open", "--json", "--config", config).stdout
    return {a["key"] for a in json.loads(out)}


def test_fetches_without_change_store_one_version_and_diff_shows_a_change(
        site: Cli, device: Device) -> None:
    config = write_config(site, device, "core", {"core": f'key_file = "{device.client_key}"'})
    before = device.fetches()  # ten in process: tests/service/test_netconfig_service.py
    for _ in range(3):
        done = site("netconfig", "fetch", "--config", config)
    assert device.fetches() - before == 3  # the device was asked each time
    assert "unchanged" in done.stdout
    found = versions(site, config, "core")
    assert len(found) == 1
    shown = site("netconfig", "show", "core", "--config", config).stdout
    assert "sysname HIS-CORE" in shown and "!Last configuration was updated at" in shown
    assert "More" not in shown and "<HIS-CORE>" not in shown  # paging and prompt gone

    device.set_config(HUAWEI_CONFIG.replace(" port default vlan 20", " port default vlan 30"))
    try:
        done = site("netconfig", "fetch", "core", "--config", config)
    finally:
        device.set_config(HUAWEI_CONFIG)
    assert "new version" in done.stdout
    assert len(versions(site, config, "core")) == 2
    diff = site("netconfig", "diff", "core", "--config", config).stdout
    changed = [line for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    # the real change, and the timestamp line (stored raw, ignored only for comparing)
    assert [line for line in changed if "Last configuration" not in line] == [
        "-" + " port default vlan 20", "+" + " port default vlan 30"]
    assert site("netconfig", "diff", "core", "2", "1", "--config", config).stdout == diff
    # a copy of the repository is read without the plan file
    listed = site("netconfig", "versions", "core", "--repo", site.repo, "--json").json()
    assert [v["snapshot_id"] for v in listed] == [
        v["snapshot_id"] for v in versions(site, config, "core")]


def test_failures_each_one_line_an_alert_and_no_version(site: Cli, device: Device) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    stranger = device.dir / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    secret = device.dir / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    empty = device.dir / "empty_known_hosts"
    empty.write_text("")
    key = f'key_file = "{device.client_key}"'
    cases = {  # device: (its settings, exit code, words of its line)
        "down": (f'{closed}|{key}', 40, "refused the connection"),
        "moved": (f'{key}\nknown_hosts = "{device.other_host_key()}"', 41,
                  "presented a host key that differs"),
        "unknown": (f'{key}\nknown_hosts = "{empty}"', 41, "host key is not in"),
        "stranger": (f'key_file = "{stranger}"', 42, "refused user 'root' with its key"),
        "badpass": (f'password_file = "{secret}"', 42, "refused user 'root' with its password"),
    }
    config = write_config(site, device, "failing", {n: c[0] for n, c in cases.items()})
    done = site("netconfig", "fetch", "--config", config, check=False)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(cases), lines
    for name, (_settings, _code, words) in cases.items():  # sorted by device name
        line = next(line for line in lines if f"device {name} " in line)
        assert words in line, (name, line)
    assert done.returncode == 42  # the first failed device's (badpass)
    assert SECRET not in done.stdout + done.stderr
    documents = site("netconfig", "fetch", "--config", config, "--json", check=False)
    codes = {d["device"]: d["exit_code"] for d in map(json.loads,
                                                      documents.stdout.splitlines())}
    assert codes == {name: case[1] for name, case in cases.items()}
    assert {f"netconfig_unreachable:{name}" for name in cases} <= open_alerts(site, config)
    stored = json.loads(site("snapshots", "--tag", "netconfig", "--json").stdout)
    assert not {s["hostname"] for s in stored} & set(cases)

    # a credentials file others can read is refused, one line, before anything is sent
    secret.chmod(0o640)
    done = site("netconfig", "fetch", "badpass", "--config", config, check=False)
    assert done.returncode != 0 and "chmod 600" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and SECRET not in done.stderr


def test_keep_and_forget_never_drop_the_newest_three(site: Cli, device: Device) -> None:
    hour = (datetime.now(ZoneInfo("Asia/Shanghai")).hour + 3) % 24  # now is outside
    window = f'change_window = "{hour:02d}:00-{(hour + 1) % 24:02d}:00"'
    config = write_config(site, device, "edge",
                          {"edge": f'key_file = "{device.client_key}"\n{window}'}, keep=3)
    try:
        for vlan in (41, 42, 43, 44):
            device.set_config(HUAWEI_CONFIG.replace("vlan batch 10 20 30",
                                                    f"vlan batch 10 20 {vlan}"))
            done = site("netconfig", "fetch", "edge", "--config", config)
    finally:
        device.set_config(HUAWEI_CONFIG)
    assert "removed 1 version" in done.stdout  # the 4th beyond keep = 3
    assert "OUTSIDE its change window" in done.stdout
    assert "netconfig_changed:edge" in open_alerts(site, config)
    assert len(versions(site, config, "edge")) == 3
    done = site("forget", "--host", "edge", "--keep-last", "1")
    assert "network-device configuration" in done.stdout
    assert len(versions(site, config, "edge")) == 3
    newest = versions(site, config, "edge")[0]["snapshot_id"]
    done = site("forget", str(newest))
    assert "kept: network-device configuration" in done.stdout
    assert len(versions(site, config, "edge")) == 3

    # Sichuan 1.4.1 is measured: 3 versions kept of the one configured device
    done = site("compliance", "--config", config, "--sichuan", "--json", check=False)
    verdicts = [v for v in json.loads(done.stdout)["verdicts"]
                if v["requirement"] == "sichuan.1.4.1"]
    assert verdicts, done.stdout
    assert {v["measured"]["status"] for v in verdicts} == {"pass"}
    assert "edge 3" in verdicts[0]["measured"]["evidence"]


def test_the_daemon_fetches_on_the_schedule(site: Cli, device: Device) -> None:
    config = write_config(site, device, "daemon", {"dmn": f'key_file = "{device.client_key}"'},
                          schedule="every 2s")
    env = {k: v for k, v in site.env.items() if not k.startswith("MEDARK_PASSWORD")}
    daemon = subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config), "--poll",
                               "0.2", "--grace", "20"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        snapshots = site.repo / "snapshots"  # a new file there: a version was stored
        known = set(snapshots.iterdir())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not set(snapshots.iterdir()) - known:
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0 and "Traceback" not in err, err
    assert len(versions(site, config, "dmn")) == 1
    jobs = site("jobs", "--json", "--config", config, "--latest", "50").json()
    fetches = [j for j in jobs if (j["plan"], j["kind"]) == ("netconfig", "fetch")]
    assert fetches and fetches[-1]["status"] == "succeeded", fetches
