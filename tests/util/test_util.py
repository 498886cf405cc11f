"""Sizes, durations, the clock and atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medark.errors import UsageError
from medark.util import clock
from medark.util.budget import ByteBudget
from medark.util.files import atomic_write
from medark.util.sizes import format_bytes, format_duration, parse_duration


def test_parse_duration_follows_restic() -> None:
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("1y6m") == timedelta(days=365 + 180)
    assert parse_duration("12h30M") == timedelta(hours=12, minutes=30)
    for bad in ("", "7", "d7", "7x", "7d x"):
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_formatting() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(3 * 2**30) == "3.00 GiB"
    assert format_duration(5.25) == "5.2s"
    assert format_duration(125) == "2m05s"
    assert format_duration(3725) == "1h02m"
    # under a second in milliseconds: a fast restore test's RTO is never "0.0s"
    assert [format_duration(s) for s in (0.0001, 0.04, 0.4204, 0.9996, 59.96)] == [
        "<1ms", "40ms", "420ms", "1.0s", "1m00s"]


def test_time_round_trip_and_fixed_clock() -> None:
    at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    assert clock.parse_time(clock.format_time(at)) == at
    assert clock.parse_time("2026-11-26T09:00:00") == at  # naive means UTC
    fixed = clock.FixedClock(at)
    fixed.advance(90)
    assert fixed.now() == at + timedelta(seconds=90) and fixed.monotonic() == 90


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temp files left
    assert target.stat().st_mode & 0o777 == 0o600


def test_byte_budget_lets_one_oversized_request_pass() -> None:
    budget = ByteBudget(10)
    budget.acquire(25)
    assert budget.used == 25
    budget.release(25)
    budget.acquire(4)
    budget.acquire(6)
    assert budget.used == 10


def test_malloc_tuning_reaches_glibc_without_starting_a_program() -> None:
    """mallopt is found among the process's own symbols: no `ldconfig -p` (which
    find_library runs) at the start of every command. Run in a fresh interpreter whose
    PATH and fork are watched."""
    probe = (
        "import os, subprocess, sys\n"
        "os.environ['PATH'] = ''\n"
        "subprocess.Popen = None\n"  # any program started would fail here
        "from medark.util.memory import fix_mmap_threshold, limit_arenas\n"
        "print(limit_arenas(), fix_mmap_threshold())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == (["True", "True"] if sys.platform.startswith("linux")
                                   and os.confstr("CS_GNU_LIBC_VERSION") else
                                   ["False", "False"])


def test_a_ctrl_c_while_a_helper_starts_waits_for_the_block_to_end() -> None:
    """The parent must know a helper it started before KeyboardInterrupt unwinds it, or it
    exits with the helper still running. Run in a fresh interpreter, whose SIGINT is
    Python's own whatever the test runner's is."""
    probe = (
        "import os, signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from medark.util.processes import interrupts_deferred\n"
        "started = []\n"
        "try:\n"
        "    with interrupts_deferred():\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        sum(range(100_000))\n"  # bytecodes enough for a handler to run
        "        started.append('helper')\n"
        "    print('not interrupted')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted after', *started)\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines() == ["interrupted after helper", "True"]
