"""A client writing orders to the test HIS (tests/his_app.py) the whole time a DR test
runs, recording what a hospital would care about: every acknowledged order (so a test
can check none is lost), every failed request with its time, and each latency.

Also the app's subprocess wrapper, `HisApp`, started on a free port and always stopped.
"""

from __future__ import annotations

import bisect
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pg_server import free_port, wait_for

HIS_APP = Path(__file__).with_name("his_app.py")


@dataclass(frozen=True)
class Ack:
    """An order the application acknowledged (201, after COMMIT)."""

    ref: str
    id: int
    server_port: int
    sent: float
    acked: float  # time.monotonic() when the answer arrived


@dataclass(frozen=True)
class Failure:
    ref: str
    sent: float
    at: float  # time.monotonic() when the request failed
    error: str


@dataclass
class LoadRecord:
    acks: list[Ack] = field(default_factory=list)  # in the order they were acknowledged
    failures: list[Failure] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return [a.acked - a.sent for a in self.acks]

    def first_ack_on(self, server_port: int, after: float) -> Ack | None:
        return next((a for a in self.acks if a.server_port == server_port and a.sent >= after),
                    None)


class WriteLoad:
    """`clients` threads, each POSTing orders back to back (a new ref each) until `stop()`."""

    def __init__(self, port: int, prefix: str = "o", timeout: float = 60.0,
                 clients: int = 1) -> None:
        self.port = port
        self.prefix = prefix
        self.timeout = timeout
        self.record = LoadRecord()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(f"{prefix}{i}",),
                                          name=f"write-load-{i}", daemon=True)
                         for i in range(clients)]

    def start(self) -> WriteLoad:
        for thread in self._threads:
            thread.start()
        return self

    def acked(self) -> int:
        with self._lock:
            return len(self.record.acks)

    def snapshot(self) -> LoadRecord:
        with self._lock:
            return LoadRecord(list(self.record.acks), list(self.record.failures))

    def stop(self) -> LoadRecord:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self.snapshot()

    def _run(self, prefix: str) -> None:
        n = 0
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            n += 1
            ref = f"{prefix}-{n}"
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                      timeout=self.timeout)
                conn.request("POST", "/orders", json.dumps({"ref": ref}),
                             {"Content-Type": "application/json"})
                answer = conn.getresponse()
                body = answer.read()
                if answer.status != 201:
                    raise RuntimeError(f"HTTP {answer.status}: {body[:200]!r}")
                doc = json.loads(body)
                ack = Ack(ref, int(doc["id"]), int(doc["server_port"]), sent, time.monotonic())
                with self._lock:
                    bisect.insort(self.record.acks, ack, key=lambda a: a.acked)
            except (OSError, http.client.HTTPException, RuntimeError, ValueError) as exc:
                with self._lock:
                    self.record.failures.append(Failure(ref, sent, time.monotonic(), str(exc)))
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()


class HisApp:
    """tests/his_app.py as a subprocess on a free port."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HisApp:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": root}
        self.proc = subprocess.Popen(
            [sys.executable, str(HIS_APP), "--dsn", self.dsn, "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(self.healthy, timeout=30, what="the HIS app to answer /health")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"the HIS app exited: {err[-500:]}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
