"""A remote repository's writer spools under the cache directory, one directory per
process; the next writer removes the spools of writers that died (repo/spool.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from medark.repo.spool import ProcessSpool, sweep

HOLD = """
import sys, time
from pathlib import Path
from medark.repo.spool import ProcessSpool
spool = ProcessSpool(Path(sys.argv[1]))
Path(spool.path(), ".pack-x.tmp").write_bytes(b"y" * 1000)
print(spool.path(), flush=True)
time.sleep(60)
"""


def _writer(root: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    with proc.stdout:
        return proc, Path(proc.stdout.readline().strip())


def test_a_killed_writers_spool_is_swept_by_the_next_and_a_live_ones_is_not(
        tmp_path: Path) -> None:
    killed, killed_dir = _writer(tmp_path)
    live, live_dir = _writer(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert (killed_dir / ".pack-x.tmp").exists()  # a kill -9 cleans nothing up
        spool = ProcessSpool(tmp_path)
        own = Path(spool.path())
        assert spool.swept == (1, 1000)
        assert not killed_dir.exists()
        assert not killed_dir.with_name(killed_dir.name + ".lock").exists()
        assert (live_dir / ".pack-x.tmp").exists()  # its writer still holds the lock
        spool.close()
        assert not own.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [live_dir.name, live_dir.name + ".lock"])
    finally:
        live.kill()
        live.wait()
    assert sweep(tmp_path) == (1, 1000)
    assert list(tmp_path.iterdir()) == []
