"""`[audit]` in the plan file: the daemon's anchor repository must be one of
`repositories`, its interval a duration of at least a second; unset, nothing anchors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from test_plans_config import GOOD, problems, write

from medark.config.loader import load_config
from medark.scheduler.audit_anchoring import anchor_schedule


def test_anchoring_is_off_unless_a_repository_is_named(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.audit.anchor_repository is None and anchor_schedule(config) is None
    config = load_config(write(tmp_path, GOOD + '\n[audit]\nanchor_repository = "local"\n'))
    schedule = anchor_schedule(config)
    assert config.audit.anchor_every == timedelta(hours=1)
    assert schedule is not None and schedule.interval == timedelta(hours=1)
    assert schedule.text == "every 1h"
    config = load_config(write(tmp_path, GOOD + '\n[audit]\nanchor_repository = "local"\n'
                                                'anchor_every = "15min"\n'))
    assert config.audit.anchor_every == timedelta(minutes=15)


def test_a_bad_audit_table_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "medark.toml"
    found = problems(tmp_path, GOOD + '\n[audit]\nanchor_repository = "worm"\n')
    assert found == [f"{path}:25: audit.anchor_repository: unknown repository 'worm' "
                     "(defined: local)"]
    found = problems(tmp_path, GOOD + '\n[audit]\nanchor_repository = "local"\n'
                                      'anchor_every = "0s"\n')
    assert len(found) == 1 and f"{path}:26: audit.anchor_every" in found[0], found
    assert "at least 1s" in found[0]
    found = problems(tmp_path, GOOD + '\n[audit]\nanchor_every = "hourly"\n')
    assert len(found) == 1 and "audit.anchor_every" in found[0], found
    found = problems(tmp_path, GOOD + '\n[audit]\nanchor_repo = "local"\n')
    assert found == [f"{path}:25: audit.anchor_repo: unknown key"]
