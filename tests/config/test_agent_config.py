"""The `[agent]` table: restore targets by name to absolute directories; a bad name, a
relative directory or one with '..' refused at its key; and the snapshot-path checks the
server and the agent share."""

from __future__ import annotations

from pathlib import Path

import pytest

from medark.config.agent_conf import exact_pattern, snapshot_path_problem
from medark.config.loader import load_config
from medark.errors import ConfigInvalid

BASE = """\
[sites.main]
location = "CN-SC"
[repositories.local]
site = "main"
url = "/backup"
[systems.pacs]
owner = "radiology"
[[systems.pacs.sources]]
type = "files"
paths = ["/data/pacs"]
[plans.pacs]
system = "pacs"
repository = "local"
schedule = "daily"
rpo = "1d"
rto = "4h"
retention = { daily = 7 }
"""


def load(tmp_path: Path, agent: str) -> object:
    path = tmp_path / "medark.toml"
    path.write_text(BASE + agent, encoding="utf-8")
    return load_config(path)


def test_restore_targets_are_named_absolute_directories(tmp_path: Path) -> None:
    config = load(tmp_path, '[agent]\nrestore_targets = { scratch = "/srv/restore", '
                            '"ward-3.tmp" = "/tmp/r" }\n')
    assert config.agent.restore_targets == {  # type: ignore[attr-defined]
        "scratch": "/srv/restore", "ward-3.tmp": "/tmp/r"}
    assert load(tmp_path, "").agent.restore_targets == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("table", "says"), [
    ('restore_targets = { scratch = "srv/restore" }', "absolute"),
    ('restore_targets = { scratch = "/srv/../etc" }', "'..'"),
    ('restore_targets = { "Bad Name" = "/srv/r" }', "restore target name"),
    ('restore_to = { scratch = "/srv/r" }', "restore_to"),
])
def test_bad_restore_targets_are_refused_at_their_key(tmp_path: Path, table: str,
                                                      says: str) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, f"[agent]\n{table}\n")
    text = "\n".join(caught.value.problems)
    assert "agent" in text and says in text, text


def test_snapshot_paths_and_their_exact_patterns() -> None:
    assert snapshot_path_problem("/data/pacs/IM0001.dcm") is None
    for bad in ("data/x", "/data/../etc/passwd", "/a/..", "/a\0b", "", 7, "/\ud800"):
        assert snapshot_path_problem(bad) is not None, bad
    assert exact_pattern("/data/[x]*?.dcm") == "/data/[[]x[]][*][?].dcm"
