"""One moto S3 server (server mode: a real HTTP endpoint on 127.0.0.1) for the whole test
session, started on first use and stopped at exit; tests never mock boto3 in-process."""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "medark-test", "AWS_SECRET_ACCESS_KEY": "medark-test",
               "AWS_DEFAULT_REGION": "us-east-1"}
_endpoint: str | None = None
_PR_SET_PDEATHSIG = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the server, before exec: SIGKILL when the test process that started it ends.
    An xdist worker can end without running atexit, and a moto_server outlived a whole
    `make test` that way."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def endpoint() -> str | None:
    """The server's URL, or None when moto's server is not installed. moto's own server
    with conditional writes made atomic (tests/moto_atomic.py)."""
    global _endpoint
    if _endpoint is not None:
        return _endpoint
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        return None
    port = _free_port()
    launcher = Path(__file__).with_name("moto_atomic.py")
    proc = subprocess.Popen([sys.executable, str(launcher), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    atexit.register(proc.kill)  # and when a worker ends without running atexit: see below
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    os.environ.update(CREDENTIALS)
    _endpoint = f"http://127.0.0.1:{port}"
    return _endpoint


def new_location(url: str) -> str:
    """A repository location in a bucket of its own."""
    return f"s3:{url}/medark-{uuid.uuid4().hex[:20]}/repo"
