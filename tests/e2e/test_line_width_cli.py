"""What a person reads fits an 80-column terminal: the common commands, run with
COLUMNS=80 against small repositories whose paths are long enough to push a sentence past
80 columns, print no line wider than that, unless the line is one token (a path or id
that must stay whole, which a wrap would only break). --json output is not prose and is
not wrapped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import MEDARK, PASSWORD, Cli
from plan_site import write_plan_config

from medark.cli.output import WIDTH, columns, wrap

CONFIG = """\
[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[sites.main]
location = "CN-SC"

[sites.regional]
location = "CN-SC"
role = "regional"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[repositories.offsite]
site = "regional"
url = "{offsite}"
password_file = "{password_file}"

[systems.pacs]
owner = "radiology"
records = "outpatient"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 5min"
rpo = "10min"
rto = "15min"
retention = {{ daily = 30, yearly = 15 }}
copies = [{{ to = "offsite", schedule = "every 10min" }}]
restore_test = {{ schedule = "0 3 * * 0", checks = ["test -d ."] }}
"""


LISTING = re.compile(r"(ID|[0-9a-f]{8})  |[-+MUT?]    /")
"""A row of a snapshot table or a diff entry: columns of data, a path last, that a wrap
would misalign; what they hold is data, not a sentence."""


def too_wide(command: str, text: str) -> list[str]:
    return [f"{command}: {columns(line)} columns: {line}" for line in text.splitlines()
            if columns(line) > WIDTH and len(line.split()) > 1 and not LISTING.match(line)]


def test_common_commands_fit_80_columns(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "radiology-archive" / "studies-2026"
    (data / "ct").mkdir(parents=True)
    for i in range(12):
        (data / "ct" / f"img{i}.dcm").write_bytes(os.urandom(20_000 + i))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    offsite = tmp_path / "offsite-repository"
    config = tmp_path / "medark.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", repo=cli.repo, offsite=offsite,
                                    password_file=password_file, data=data),
                      encoding="utf-8")
    cli.env["COLUMNS"] = "80"
    target = tmp_path / "restored-for-the-radiology-department"
    wide: list[str] = []

    def run(*args: str | Path, password: str | None = PASSWORD) -> None:
        result = cli(*args, password=password, check=False)
        assert result.returncode in (0, 17), (args, result.stderr)  # 17: not compliant
        name = " ".join(str(a) for a in args[:2])
        wide.extend(too_wide(name, result.stdout) + too_wide(name, result.stderr))

    run("init")
    run("backup", data)
    (data / "ct" / "img0.dcm").write_bytes(os.urandom(30_000))
    run("backup", data)
    ids = [s["short_id"] for s in cli("--json", "snapshots").json()]
    for args in [("snapshots",), ("ls", "latest"), ("restore", "latest", "--target", target),
                 ("check",), ("check", "--read-data"), ("stats",), ("diff", *ids),
                 ("forget", "--keep-last", "1", "--dry-run"), ("forget", "--keep-last", "1"),
                 ("prune",), ("init", "--repo", offsite),
                 ("copy", "--from-repo", cli.repo, "--to-repo", offsite),
                 ("copy", "--from-repo", cli.repo, "--to-repo", offsite, "--status")]:
        run(*args)
    for args in [("run", "pacs"), ("verify", "pacs"), ("jobs",), ("plan", "show"),
                 ("alerts",), ("compliance", "--profile", "三甲", "--level", "3", "--lang", "en"),
                 ("compliance", "--profile", "三甲", "--level", "3", "--lang", "zh")]:
        run(*args, "--config", config, password=None)
    assert wide == [], "\n".join(wide)


FAILING = """\
[systems.lis]
owner = "laboratory"

[[systems.lis.sources]]
type = "files"
paths = ["{missing}"]

[plans.lis]
system = "lis"
repository = "local"
schedule = "every 1s"
rpo = "1s"
rto = "15min"
retention = {{ daily = 7 }}
"""


def test_alerts_and_failed_jobs_fit_80_columns(cli: Cli, tmp_path: Path) -> None:
    """What the daemon records of a plan that fails: the alerts and the jobs listing."""
    missing = tmp_path / "laboratory-information-system" / "results-not-mounted"
    config = write_plan_config(cli, tmp_path, FAILING, missing=missing)
    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    daemon = subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config), "--poll",
                               "0.1", "--retry-base", "0.2"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(cli("alerts", "--json", "--config", config, password=None).json()) < 2:
            assert time.monotonic() < deadline, "the daemon raised no alerts in 60 s"
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    cli.env["COLUMNS"] = "80"
    wide = []
    for command in ("alerts", "jobs"):
        result = cli(command, "--config", config, password=None)
        assert "lis" in result.stdout
        wide += too_wide(command, result.stdout)
    assert f"    {missing}\n" in result.stdout  # a path is wrapped whole, never cut
    assert wide == [], "\n".join(wide)


def test_a_wrap_keeps_sizes_units_and_paths_whole() -> None:
    """The wrap itself: a size and its unit, a Chinese duration, a closing mark and a path
    longer than a line stay whole; Chinese breaks between characters, by columns."""
    path = "/srv/" + "p" * 90
    text = wrap(f"restored 38 files (586.40 KiB) in 20ms at 28.97 MiB/s to {path} at last", 4)
    assert text.splitlines()[1] == f"    {path}"
    assert "28.97 MiB/s" in text and text.replace("\n    ", " ") == " ".join(text.split())
    sentence = ("设计：计划 RTO 15 分钟 ≤ 15 分钟；实测：恢复演练 RTO 265 毫秒 ≤ 15 分钟，"
                "保留策略 5.2 秒前执行；按策略保留每年的病历恢复点")
    zh = wrap(sentence, 11).splitlines()
    assert len(zh) > 1 and all(columns(line) <= WIDTH for line in zh), zh
    assert not [line for line in zh if re.search(r"\d$", line)]  # a number keeps its unit
    assert not [line for line in zh[1:] if line.lstrip()[0] in "，；）"], zh
    assert "".join("".join(zh).split()) == "".join(sentence.split())
