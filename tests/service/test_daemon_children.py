"""The daemon's children at shutdown: a job admitted before the daemon stopped may still
start its steps (its grace period is for them); a job that was not admitted starts
nothing, so it leaves no failed row and its slot stays open for the catch-up."""

from __future__ import annotations

import sys
import threading

from medark.scheduler.children import Children
from medark.scheduler.runner import Step

ECHO = Step("echo", [sys.executable, "-c", "print('ran')"], {})


def test_an_admitted_job_finishes_its_steps_after_close() -> None:
    children = Children()
    with children.job() as admitted:
        assert admitted
        assert children.launch(ECHO).stdout.strip() == "ran"
        children.close()  # SIGTERM arrived between two steps
        second = children.launch(ECHO)
        assert second.returncode == 0 and second.stdout.strip() == "ran"
    refused = children.launch(ECHO)  # the job is over: nothing more from this thread
    assert refused.returncode != 0 and "shutting down" in refused.stderr


def test_no_job_is_admitted_once_closed_nor_from_other_threads() -> None:
    children = Children()
    with children.job() as admitted:
        assert admitted
        children.close()
        seen: list[int] = []
        other = threading.Thread(target=lambda: seen.append(children.launch(ECHO).returncode))
        other.start()
        other.join()
        assert seen and seen[0] != 0  # a continuous follower's relaunch is refused
    with children.job() as admitted:
        assert not admitted
