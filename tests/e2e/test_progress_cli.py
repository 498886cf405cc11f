"""The progress bar as a person sees it: `medark backup` run in a pseudo-terminal 80
columns wide. It must move while a large file is read (not jump when the file ends),
show an ETA from the byte throughput and the scanned total, in binary units, on one line."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

from conftest import MEDARK, PASSWORD, Cli

COLUMNS = 80
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FRAME = re.compile(r"(\d+\.\d)/(\d+\.\d) MiB\b(.*)ETA (\S+)\s*$")
"""done/total MiB, the speed and the count of files done (none shown while the first
file is read), the ETA."""


def run_in_terminal(cli: Cli, *args: str | Path) -> tuple[int, str]:
    """`medark ARGS` with stdin, stdout and stderr on a pty of COLUMNS x 24; its output
    with the escape sequences removed."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    env = dict(cli.env, MEDARK_PASSWORD=PASSWORD, COLUMNS=str(COLUMNS), LINES="24",
               TERM="xterm-256color")
    proc = subprocess.Popen([MEDARK, *map(str, args)], env=env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _w, _x = select.select([master], [], [], 1.0)
            if ready:
                try:
                    block = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not block:
                    break
                out += block
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=300)
    finally:
        os.close(master)
    return code, ANSI.sub("", out.decode("utf-8", "replace"))


def frames(text: str) -> list[str]:
    """Each redraw of the bar (rich redraws with a carriage return) and each line."""
    return [f for f in re.split(r"[\r\n]+", text) if f.strip()]


def test_the_bar_moves_inside_a_large_file_with_an_eta_in_mib(initialized: Cli,
                                                              tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    size = 200 * 1024 * 1024
    with open(data / "scan.dcm", "wb") as f:
        for _ in range(size // (8 << 20)):
            f.write(os.urandom(8 << 20))  # incompressible, so storing it takes a while

    # Uploads capped at 64 MiB/s: the backup lasts about three seconds on any machine,
    # long enough for the bar (ten redraws a second) to show it inside the file.
    code, text = run_in_terminal(initialized, "--limit-upload", "65536", "backup", data)

    assert code == 0, text
    bars = [(f, FRAME.search(f)) for f in frames(text)]
    inside = [(f, m) for f, m in bars if m is not None and "file" not in m.group(3)]
    done = [float(m.group(1)) for _f, m in inside]
    partial = sorted({d for d in done if 0 < d < 200.0})
    # While the one file is read (no file done), the bar shows several byte counts in it.
    assert len(partial) >= 3, text
    assert done == sorted(done), done  # it never goes back
    assert {m.group(2) for _f, m in inside} == {"200.0"}  # the scanned total, in MiB
    assert any(re.fullmatch(r"\d+:\d\d:\d\d", m.group(4)) for _f, m in inside), text
    assert any(re.search(r"\d+\.\d MiB/s", f) for f, _m in inside), text
    assert not re.search(r"\d (?:[kMGT]B|MB/s)\b", text), text  # binary units only
    for frame, match in bars:
        if match is not None:
            assert len(frame.rstrip()) <= COLUMNS, frame  # one line in 80 columns
    assert any(m is not None and " 1 file " in m.group(3) for _f, m in bars), text
    assert "snapshot " in text and "200.00 MiB" in text  # the summary follows the bar
