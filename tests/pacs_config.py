"""The plan-file text the consistency-group configuration tests share (tests/config/
test_group*_config.py, tests/scheduler/test_group_steps.py): a site, repository `local`,
plan `pacs` and system `pacs` with no source yet (HEAD), Orthanc's file tree as the group's
files source (FILES), and loading such a text from a file, so problems name its lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from medark.config.loader import load_config
from medark.config.plans import MedarkConfig
from medark.errors import ConfigInvalid

HEAD = """\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/backup"

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "0 2 * * *"
rpo = "1d"
rto = "4h"
retention = { daily = 30 }

[systems.pacs]
owner = "radiology"
"""

FILES = """
[[systems.pacs.sources]]
type = "files"
paths = ["/var/lib/orthanc/db"]
group = "pacs"
pacs = "orthanc"
"""


def load(tmp_path: Path, text: str) -> MedarkConfig:
    """`text` written to tmp_path/medark.toml and loaded as the commands load it."""
    path = tmp_path / "medark.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    """What loading `text` refuses, each `FILE:LINE: problem`."""
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, text)
    return caught.value.problems
