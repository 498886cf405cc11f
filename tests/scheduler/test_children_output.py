"""A launched child's standard output followed line by line (Step.on_output): each line
reaches the listener while the child still runs (the agent streams a DR action's steps
so), the output is still whole at the end, and a timeout still stops the child."""

from __future__ import annotations

import sys
from pathlib import Path

from medark.scheduler.children import TIMED_OUT, Children
from medark.scheduler.runner import Step

WAIT_FOR_FILE = """
import os, sys, time
print("first", flush=True)
while not os.path.exists(sys.argv[1]):  # the listener makes it on hearing "first"
    time.sleep(0.05)
print("second")
print("warned", file=sys.stderr)
"""


def test_each_line_reaches_the_listener_while_the_child_runs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    heard: list[str] = []

    def listen(line: str) -> None:
        heard.append(line)
        if line == "first":
            gate.touch()  # the child goes on only once this was heard

    step = Step("follow", [sys.executable, "-c", WAIT_FOR_FILE, str(gate)], {},
                on_output=listen)
    done = Children().launch(step, timeout=120)
    assert done.returncode == 0, done.stderr
    assert heard == ["first", "second"]
    assert done.stdout == "first\nsecond\n" and done.stderr == "warned\n"


def test_a_failing_listener_does_not_stop_the_reading(tmp_path: Path) -> None:
    def listen(line: str) -> None:
        raise RuntimeError(line)

    code = "for i in range(20000): print('x' * 80)"  # more than a pipe holds
    step = Step("noisy", [sys.executable, "-c", code], {}, on_output=listen)
    done = Children().launch(step, timeout=120)
    assert done.returncode == 0 and done.stdout.count("\n") == 20000


def test_a_followed_child_is_still_stopped_at_its_timeout(tmp_path: Path) -> None:
    heard: list[str] = []
    code = "import time; print('started', flush=True); time.sleep(600)"
    step = Step("hung", [sys.executable, "-c", code], {}, on_output=heard.append)
    done = Children().launch(step, timeout=1)
    assert done.returncode == TIMED_OUT
    assert heard == ["started"] and done.stdout == "started\n"
    assert "hung timed out after 1 s" in done.stderr
