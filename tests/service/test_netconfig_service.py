"""service/netconfig.py in process against the scripted Huawei device (a real sshd,
tests/ssh_device.py) and a repository in memory: ten fetches without a real change store
one version, a real change stores the next, and the stored text is the device's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from netconfig_site import device_section, his_plan, key_file, netconfig_section
from ssh_device import HUAWEI_CONFIG, Device, can_run_sshd, running_device

from medark.config.plans import MedarkConfig
from medark.repo.compression import parse_compression
from medark.repo.repository import Repository
from medark.service.netconfig import fetch_and_store, read_version, versions
from medark.service.plans import load_plans_text
from medark.snapshot.store import all_snapshots
from medark.storage.mem import MemoryBackend

CONFIG = """\
[sites.main]
location = "CN-SC"
[repositories.local]
site = "main"
url = "/unused"
"""


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    if can_run_sshd() is not None:
        pytest.skip(str(can_run_sshd()))
    with running_device(tmp_path_factory.mktemp("huawei"), "huawei") as dev:
        yield dev


def config(dev: Device) -> MedarkConfig:
    return load_plans_text(CONFIG + his_plan() + netconfig_section(dev.known_hosts)
                           + device_section("core", dev.port, key_file(dev)))


def test_ten_fetches_store_one_version_until_a_real_change(device: Device,
                                                          tmp_path: Path) -> None:
    repo = Repository.init(MemoryBackend(), b"pw", "aes-256-gcm",
                           parse_compression("zstd:3"), tmp_path / "cache")
    conf = config(device)
    try:
        before = device.fetches()
        statuses = [fetch_and_store(repo, conf, ["core"])[0].status for _ in range(10)]
        assert device.fetches() - before == 10
        assert statuses == ["stored"] + ["unchanged"] * 9
        stored = versions(all_snapshots(repo), "core")
        assert len(stored) == 1
        text = read_version(repo, stored[0]).decode()
        assert text.startswith("!Software Version") and text.endswith("return\n")
        assert "!Last configuration was updated at" in text  # raw: kept, only ignored

        device.set_config(HUAWEI_CONFIG.replace("sysname HIS-CORE", "sysname HIS-CORE-2"))
        outcome = fetch_and_store(repo, conf, ["core"])[0]
        assert outcome.status == "stored" and not outcome.outside_window
        assert len(versions(all_snapshots(repo), "core")) == 2
    finally:
        device.set_config(HUAWEI_CONFIG)
        repo.close()
