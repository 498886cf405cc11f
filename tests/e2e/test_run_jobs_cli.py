"""`medark run PLAN` and `medark jobs` through the real command: a plan's sources backed
up into its repository by child processes, every job in the catalog, failures recorded
with their reason while the other sources still run."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli
from plan_site import write_plan_config

CONFIG = """\
[systems.pacs]
owner = "radiology"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[[systems.pacs.sources]]
type = "command"
command = "sh -c 'echo dump of the registry'"
filename = "registry.sql"

[systems.broken]
owner = "nobody"

[[systems.broken.sources]]
type = "files"
paths = ["{missing}"]

[[systems.broken.sources]]
type = "command"
command = "sh -c 'echo still backed up'"
filename = "other.sql"

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}

[plans.broken]
system = "broken"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
"""


def _setup(cli: Cli, tmp_path: Path) -> Path:
    data = tmp_path / "pacs"
    data.mkdir()
    (data / "study.dcm").write_bytes(b"DICM" * 5000)
    return write_plan_config(cli, tmp_path, CONFIG, data=data, missing=tmp_path / "absent")


def test_a_plan_runs_now_and_its_job_is_in_the_catalog(cli: Cli, tmp_path: Path) -> None:
    config = _setup(cli, tmp_path)
    done = cli("--json", "run", "pacs", "--config", config, password=None).json_lines()[0]
    assert done["status"] == "succeeded" and len(done["snapshot_ids"]) == 2
    assert done["bytes_added"] > 0
    snaps = cli("snapshots", "--json").json()
    assert len(snaps) == 2 and all("plan=pacs" in s["tags"] for s in snaps)
    assert all("system=pacs" in s["tags"] for s in snaps)
    jobs = cli("jobs", "--json", "--config", config, password=None).json()
    assert [(j["plan"], j["kind"], j["status"]) for j in jobs] == [
        ("pacs", "forget", "succeeded"), ("pacs", "backup", "succeeded")]
    assert jobs[1]["snapshot_id"] in done["snapshot_ids"]
    assert jobs[1]["rpo_seconds"] is not None and jobs[1]["finished_at"] is not None
    listed = cli("jobs", "--config", config, password=None).stdout
    assert "pacs" in listed and "succeeded" in listed


def test_a_failing_source_fails_the_job_and_the_rest_still_runs(cli: Cli,
                                                               tmp_path: Path) -> None:
    config = _setup(cli, tmp_path)
    failed = cli("run", "broken", "--config", config, password=None, check=False)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "absent" in failed.stderr
    snaps = cli("snapshots", "--json").json()
    assert len(snaps) == 1 and "plan=broken" in snaps[0]["tags"]  # the command source ran
    catalog = f"sqlite:///{tmp_path / 'state' / 'catalog.sqlite'}"
    jobs = cli("jobs", "--json", "--catalog", catalog, "--status", "failed",
               password=None).json()
    assert len(jobs) == 1 and jobs[0]["plan"] == "broken"
    assert "absent" in jobs[0]["error"] and jobs[0]["rpo_seconds"] is None
    steps = jobs[0]["details"]["steps"]
    assert [s["exit_code"] == 0 for s in steps] == [False, True]
    unknown = cli("run", "nope", "--config", config, password=None, check=False)
    assert unknown.returncode == 2 and "no plan named nope" in unknown.stderr
