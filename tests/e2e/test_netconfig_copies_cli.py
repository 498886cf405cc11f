"""`[netconfig] copies`: after each fetch slot the daemon copies the versions to each copy
target (job `copy:TARGET` of `netconfig`, then `forget:TARGET`), against the scripted
Huawei device of tests/ssh_device.py (a real sshd) and real repositories; a failing copy
raises `job_failed:netconfig:copy:TARGET`; on the target, no forget removes a device's
newest max(3, keep) versions (the tags travel with each version)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from medark_command import MEDARK
from netconfig_site import device_section, his_plan, key_file, netconfig_section, new_site
from ssh_device import HUAWEI_CONFIG, Device, can_run_sshd, running_device

from medark.catalog.store import Catalog
from medark.config.loader import load_config
from medark.scheduler.netconfig_job import run_netconfig, run_netconfig_copy
from medark.scheduler.runner import Step

pytestmark = pytest.mark.skipif(can_run_sshd() is not None, reason=str(can_run_sshd()))

CONFIG = """\
[catalog]
url = "sqlite:///{root}/catalog.sqlite"

[sites.main]
location = "CN-SC"
[sites.far]
location = "CN-CQ"

[repositories.local]
site = "main"
url = "{root}/local"
password_file = "{root}/password"

[repositories.offsite]
site = "far"
url = "{root}/offsite"
password_file = "{root}/password"

[repositories.broken]
site = "far"
url = "{root}/never-initialised"
password_file = "{root}/password"

"""


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    with running_device(tmp_path_factory.mktemp("device"), "huawei") as dev:
        yield dev


def setup(root: Path, device: Device, schedule: str, copies: list[str]) -> tuple[Cli, Path]:
    site = new_site(root, root / "local")
    site("init", "--repo", root / "offsite")
    config = root / "medark.toml"
    more = f'keep = 3\nschedule = "{schedule}"\ncopies = {json.dumps(copies)}\n'
    config.write_text(CONFIG.format(root=root) + his_plan("0 3 1 1 *")
                      + netconfig_section(device.known_hosts, more)
                      + device_section("core", device.port, key_file(device)))
    return site, config


def versions(site: Cli, repo: Path) -> list[tuple[str, str]]:
    """(time, SHA-256 of the normalised text) of each version, newest first: a copy is a
    snapshot of its own id in the target."""
    found = site("-r", repo, "netconfig", "versions", "core", "--json").json()
    return [(str(v["time"]), str(v["sha256"])) for v in found]


def ids(site: Cli, repo: Path) -> list[str]:
    found = site("-r", repo, "netconfig", "versions", "core", "--json").json()
    return [str(v["snapshot_id"]) for v in found]


def jobs(site: Cli, config: Path) -> list[dict[str, object]]:
    found: list[dict[str, object]] = site("jobs", "--json", "--config", config,
                                          "--latest", "50").json()
    return found


def test_the_daemon_copies_the_versions_after_each_fetch_slot(tmp_path: Path,
                                                              device: Device) -> None:
    site, config = setup(tmp_path, device, "every 2s", ["offsite", "broken"])
    env = {k: v for k, v in site.env.items() if not k.startswith("MEDARK_PASSWORD")}
    daemon = subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config), "--poll",
                               "0.2", "--grace", "20"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        snapshots = tmp_path / "offsite" / "snapshots"  # a file there: a version was copied
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (snapshots.is_dir()
                                                   and any(snapshots.iterdir())):
            time.sleep(0.2)
        time.sleep(2)  # the forget on it and the broken target's copy
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0 and "Traceback" not in err, err
    here = versions(site, tmp_path / "local")
    assert len(here) == 1 and versions(site, tmp_path / "offsite") == here
    listed = site("-r", tmp_path / "offsite", "snapshots", "--tag", "netconfig", "--json").json()
    assert {s["hostname"] for s in listed} == {"core"}
    assert "netconfig-keep=3" in listed[0]["tags"]
    done = {(j["kind"], j["status"]) for j in jobs(site, config) if j["plan"] == "netconfig"}
    assert {("fetch", "succeeded"), ("copy:offsite", "succeeded"),
            ("forget:offsite", "succeeded"), ("copy:broken", "failed")} <= done, done
    assert ("forget:broken", "succeeded") not in done  # no forget after a failed copy
    alerts = {a["key"] for a in site("alerts", "--open", "--json", "--config", config).json()}
    assert "job_failed:netconfig:copy:broken" in alerts
    assert "job_failed:netconfig:copy:offsite" not in alerts
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(e.get("kind") == "copy:offsite" for e in events), out[-2000:]


def test_a_copy_target_keeps_the_newest_versions_whatever_forget_says(
        tmp_path: Path, device: Device) -> None:
    site, config = setup(tmp_path, device, "0 */4 * * *", ["offsite"])
    conf = load_config(config)
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")

    def launch(step: Step) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in site.env.items() if not k.startswith("MEDARK_PASSWORD")}
        return subprocess.run(step.argv, env={**env, **step.env}, capture_output=True,
                              text=True, check=False)

    try:
        for vlan in (41, 42, 43, 44):  # the daemon's calls for four slots, each a change
            device.set_config(HUAWEI_CONFIG.replace("vlan batch 10 20 30",
                                                    f"vlan batch 10 20 {vlan}"))
            fetched = run_netconfig(catalog, str(config), None, launch)
            assert fetched.status == "succeeded", fetched.error
            done = run_netconfig_copy(conf, catalog, "offsite", None, launch)
            assert [(k, o.status) for k, o in done] == [
                ("copy:offsite", "succeeded"), ("forget:offsite", "succeeded")], done
    finally:
        device.set_config(HUAWEI_CONFIG)
        catalog.close()
    offsite = tmp_path / "offsite"
    here = versions(site, tmp_path / "local")
    assert len(here) == 3 and versions(site, offsite) == here  # keep = 3 on both sides
    # the plan's forget on a copy target, a broad forget, a forget by id: all keep them
    site("-r", offsite, "forget", "--tag", "plan=his", "--group-by", "host,paths",
         "--keep-last", "1")
    shown = site("-r", offsite, "forget", "--keep-last", "1", "--group-by", "host,paths")
    assert "network-device configuration" in shown.stdout
    shown = site("-r", offsite, "forget", ids(site, offsite)[0])
    assert "kept: network-device configuration" in shown.stdout
    assert versions(site, offsite) == here
    diff = site("-r", offsite, "netconfig", "diff", "core").stdout
    assert "-vlan batch 10 20 43" in diff and "+vlan batch 10 20 44" in diff
