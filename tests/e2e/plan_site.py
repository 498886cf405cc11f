"""The site most plan tests share: a catalog, one site, one local repository opened by a
password file; each test adds its systems and plans."""

from __future__ import annotations

from pathlib import Path

from conftest import PASSWORD, Cli

SITE = """\
[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

"""


def write_plan_config(cli: Cli, tmp_path: Path, body: str, **values: object) -> Path:
    """A password file, the initialized repository, and medark.toml: SITE and `body`
    formatted with state, repo, password_file and `values`."""
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    config = tmp_path / "medark.toml"
    config.write_text((SITE + body).format(state=tmp_path / "state", repo=cli.repo,
                                           password_file=password_file, **values),
                      encoding="utf-8")
    return config


# An EMR file store backed up hourly into `local` and copied to `offsite`, each with
# its own retention (`local_last`, `offsite_last`): the copy-target retention tests.
EMR_WITH_OFFSITE = """\
[repositories.offsite]
site = "main"
url = "{offsite}"
password_file = "{password_file}"
prune = "every 30s"

[systems.emr]
owner = "medical records office"
records = "inpatient"

[[systems.emr.sources]]
type = "files"
paths = ["{data}"]

[plans.emr]
system = "emr"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ last = {local_last}, yearly = 30 }}

[[plans.emr.copies]]
to = "offsite"
schedule = "every 1h"
retention = {{ last = {offsite_last}, yearly = 30 }}
"""
