"""Test modules in the order longest first (the longest-processing-time rule), so that
`make test`'s workers (-n 4 --dist loadfile) do not end on one long module while the
others idle. The seconds come from a recorded run (tests/module_seconds.json, rewritten by
`make test-seconds`); a module not in it counts as short. Tests within a module keep
their order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SECONDS = Path(__file__).with_name("module_seconds.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        seconds: dict[str, float] = json.loads(SECONDS.read_text())
    except (OSError, ValueError):
        return
    root = config.rootpath

    def weight(item: pytest.Item) -> float:
        return -seconds.get(item.path.relative_to(root).as_posix(), 0.0)

    items.sort(key=weight)  # stable: a module's tests stay together and in order
