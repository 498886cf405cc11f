"""A throwaway Orthanc PACS for tests (Debian's /usr/sbin/Orthanc): its JSON config, storage
and log in a temporary directory, free HTTP and DICOM ports, always stopped afterwards.

The index is SQLite in that directory, or PostgreSQL in a throwaway database created on
the running server 127.0.0.1:5432 (user postgres, trust auth) and dropped at the end.
HTTP answers only on the loopback (RemoteAccessAllowed false; Orthanc 1.10 has no bind
address, so the DICOM port listens on every interface of this test host). No HTTP
authentication; the DICOM server accepts any calling AE title, and checks the called
one only when asked (`check_called_aet`), for the association-rejected tests.

    with running_orthanc(index="postgresql") as pacs:
        pacs.upload(path_or_bytes)          # POST /instances
        pacs.study_uids()                   # StudyInstanceUIDs it holds
        pacs.sop_instance_uids()            # SOPInstanceUIDs it holds
        pacs.instance_file(sop_uid)         # the stored file's bytes
        pacs.peer                           # "ORTHANC@127.0.0.1:<dicom port>"
        stop, start = pacs.service_commands()  # as systemctl stop/start orthanc
    data_set(part10_bytes)                  # the bytes after the file meta, to compare
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pg_server import free_port, wait_for

ORTHANC = "/usr/sbin/Orthanc"
PG_INDEX_PLUGIN = "/usr/lib/orthanc/libOrthancPostgreSQLIndex.so.4.0"
PG_HOST, PG_PORT = "127.0.0.1", 5432


def data_set(part10: bytes) -> bytes:
    """A Part-10 file's data set, after its file meta group: what to compare with the
    original after a C-STORE, since the receiving PACS writes its own file meta."""
    if part10[128:132] != b"DICM":
        raise ValueError("not a DICOM Part-10 file")
    tag, vr, _length, meta_length = struct.unpack("<I2sHI", part10[132:144])
    if (tag, vr) != (0x00000002, b"UL"):
        raise ValueError("the file meta group does not start with its group length")
    return part10[144 + meta_length:]


def can_run_orthanc(index: str = "sqlite") -> str | None:
    """None when a throwaway Orthanc with this index can run here, else the reason."""
    if not os.access(ORTHANC, os.X_OK):
        return f"{ORTHANC} is not installed (Debian package orthanc)"
    if index == "postgresql" and not os.path.exists(PG_INDEX_PLUGIN):
        return f"{PG_INDEX_PLUGIN} is not installed (Debian package orthanc-postgresql)"
    return None


def _pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres",
                         autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


@dataclass
class OrthancServer:
    """One Orthanc on 127.0.0.1: http_url for REST, aet@127.0.0.1:dicom_port for DICOM."""

    base: Path
    index: str = "sqlite"
    """"sqlite" or "postgresql"."""
    aet: str = "ORTHANC"
    check_called_aet: bool = False
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    pg_database: str | None = None
    lua: str | None = None
    """A Lua script Orthanc runs (callbacks such as ReceivedInstanceFilter)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Configuration options over the defaults (e.g. {"DicomScpTimeout": 2})."""
    _proc: subprocess.Popen[bytes] | None = None
    _http: httpx.Client | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def peer(self) -> str:
        """The `AET@host:port` a C-STORE client is given."""
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    @property
    def storage_dir(self) -> Path:
        return self.base / "storage"

    @property
    def config_path(self) -> Path:
        return self.base / "orthanc.json"

    @property
    def log_path(self) -> Path:
        return self.base / "orthanc.log"

    @property
    def pid_path(self) -> Path:
        """The running Orthanc's pid (the test's child, or one a start command started)."""
        return self.base / "orthanc.pid"

    @property
    def index_dsn(self) -> str | None:
        """The PostgreSQL index's DSN (None for SQLite, which lives in storage_dir)."""
        if self.pg_database is None:
            return None
        return f"host={PG_HOST} port={PG_PORT} user=postgres dbname={self.pg_database}"

    def config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "Name": "medark-test-orthanc",
            "StorageDirectory": str(self.storage_dir),
            "IndexDirectory": str(self.storage_dir),
            "StorageCompression": False,
            "Plugins": [],
            "ConcurrentJobs": 1,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpDescribeErrors": True,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": self.check_called_aet,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomScpTimeout": 10,
            "UnknownSopClassAccepted": False,
            "DefaultEncoding": "Utf8",
            "SaveJobs": False,
            "JobsHistorySize": 0,
        }
        conf.update(self.settings)
        if self.lua is not None:
            conf["LuaScripts"] = [str(self.base / "test.lua")]
        if self.index == "postgresql":
            assert self.pg_database is not None
            conf["Plugins"] = [PG_INDEX_PLUGIN]
            conf["PostgreSQL"] = {
                "EnableIndex": True, "EnableStorage": False, "Host": PG_HOST,
                "Port": PG_PORT, "Database": self.pg_database, "Username": "postgres",
                "Password": "", "Lock": False, "EnableSsl": False,
                "MaximumConnectionRetries": 3, "ConnectionRetryInterval": 1,
                "IndexConnectionsCount": 1,
            }
        return conf

    def start(self, timeout: float = 60.0) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        if self.lua is not None:
            (self.base / "test.lua").write_text(self.lua, encoding="utf-8")
        log = open(self.log_path, "ab")  # noqa: SIM115  (the child keeps it)
        try:
            self._proc = subprocess.Popen([ORTHANC, "--no-jobs", str(self.config_path)],
                                          stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.base)
        finally:
            log.close()
        self.pid_path.write_text(str(self._proc.pid))
        self._http = httpx.Client(base_url=self.http_url, timeout=30.0)
        wait_for(self._answers, timeout=timeout, what="Orthanc's /system",
                 detail=self.log)

    def service_commands(self) -> tuple[str, str]:
        """(stop, start): shell commands stopping and starting this Orthanc as a service
        manager does (`systemctl stop orthanc` returns once it has exited), for `group
        backup --stop-command/--start-command`. The one started is not the test's child:
        `reattached()` waits for it to answer, stop() ends it by its pid file."""
        stop, start = self.base / "stop-orthanc.sh", self.base / "start-orthanc.sh"
        pid = self.pid_path
        stop.write_text(f"""#!/bin/sh
pid=$(cat '{pid}') || exit 1
kill -TERM "$pid" 2>/dev/null || exit 0
i=0  # until it has exited (the test's own child stays a zombie until it is reaped)
while [ -e /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 600 ] && echo "Orthanc $pid did not stop" >&2 && exit 1
  sleep 0.05
done
""")
        start.write_text(f"""#!/bin/sh
cd '{self.base}' || exit 1
'{ORTHANC}' --no-jobs '{self.config_path}' >>'{self.log_path}' 2>&1 </dev/null &
echo $! >'{pid}'
""")
        stop.chmod(0o755)
        start.chmod(0o755)
        return str(stop), str(start)

    def reattached(self, timeout: float = 60.0) -> None:
        """After a start command: the Orthanc it started answers (the test's own child,
        stopped, is reaped)."""
        if self._proc is not None:
            self._proc.wait(timeout=20)
            self._proc = None
        if self._http is None:
            self._http = httpx.Client(base_url=self.http_url, timeout=30.0)
        wait_for(self._answers, timeout=timeout, what="Orthanc's /system", detail=self.log)

    def _answers(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {self._proc.returncode}: {self.log()}")
        try:
            return self.get("/system").get("DicomAet") == self.aet
        except (httpx.HTTPError, ValueError):
            return False

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None
        self._stop_detached()

    def _stop_detached(self) -> None:
        """An Orthanc a start command left running (not our child: no wait(), its /proc
        entry goes when init reaps it)."""
        try:
            pid = int(self.pid_path.read_text())
        except (OSError, ValueError):
            return
        self.pid_path.unlink()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """Gone at once, as a crash or a destroyed host (a graceful stop takes seconds)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        with suppress(OSError, ValueError):
            os.kill(int(self.pid_path.read_text()), signal.SIGKILL)
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # REST helpers

    @property
    def http(self) -> httpx.Client:
        assert self._http is not None, "Orthanc is not running"
        return self._http

    def get(self, path: str) -> Any:
        answer = self.http.get(path)
        answer.raise_for_status()
        return answer.json()

    def upload(self, dicom: Path | str | bytes) -> dict[str, Any]:
        """POST /instances; returns Orthanc's answer (ID, Status, ParentStudy...)."""
        data = dicom if isinstance(dicom, bytes) else Path(dicom).read_bytes()
        answer = self.http.post("/instances", content=data,
                                headers={"Content-Type": "application/dicom"})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def upload_many(self, files: Iterable[Path | str | bytes]) -> list[dict[str, Any]]:
        return [self.upload(f) for f in files]

    def studies(self) -> list[str]:
        """Orthanc's own study IDs."""
        return list(self.get("/studies"))

    def study_uids(self) -> list[str]:
        """The StudyInstanceUIDs it holds, sorted."""
        return sorted(self.get(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"]
                      for s in self.studies())

    def instances(self) -> list[str]:
        """Orthanc's own instance IDs."""
        return list(self.get("/instances"))

    def sop_instance_uids(self) -> list[str]:
        """The SOPInstanceUIDs it holds, sorted."""
        return sorted(self.get(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
                      for i in self.instances())

    def find_instance(self, sop_instance_uid: str) -> str | None:
        """Orthanc's ID of the instance with this SOPInstanceUID, if it holds it."""
        answer = self.http.post("/tools/lookup", content=sop_instance_uid)
        answer.raise_for_status()
        for hit in answer.json():
            if hit.get("Type") == "Instance":
                return str(hit["ID"])
        return None

    def instance_file(self, sop_instance_uid: str) -> bytes:
        """The stored DICOM file of that instance, as Orthanc gives it back."""
        found = self.find_instance(sop_instance_uid)
        if found is None:
            raise KeyError(sop_instance_uid)
        answer = self.http.get(f"/instances/{found}/file")
        answer.raise_for_status()
        return answer.content

    def delete_all(self) -> None:
        """Empty the PACS (between tests of one module sharing this server)."""
        for study in self.studies():
            self.http.delete(f"/studies/{study}").raise_for_status()


@contextmanager
def running_orthanc(index: str = "sqlite", aet: str = "ORTHANC",
                    check_called_aet: bool = False, lua: str | None = None,
                    settings: dict[str, Any] | None = None) -> Iterator[OrthancServer]:
    """A throwaway Orthanc, answering /system when the block starts, stopped and removed
    (with its PostgreSQL database) when it ends. `lua`: a script it runs, e.g. a
    ReceivedInstanceFilter that refuses some instances (a C-STORE failure status);
    `settings`: Orthanc configuration options over the harness's own."""
    if index not in ("sqlite", "postgresql"):
        raise ValueError(f"index must be sqlite or postgresql, not {index!r}")
    base = Path(tempfile.mkdtemp(prefix="medark-orthanc-", dir="/tmp"))
    server = OrthancServer(base, index=index, aet=aet, check_called_aet=check_called_aet,
                           lua=lua, settings=dict(settings or {}))
    try:
        if index == "postgresql":
            server.pg_database = f"medark_orthanc_{uuid.uuid4().hex[:12]}"
            _pg_admin(f'CREATE DATABASE "{server.pg_database}"')
        server.start()
        yield server
    finally:
        server.stop()
        if server.pg_database is not None:
            _pg_admin(f'DROP DATABASE IF EXISTS "{server.pg_database}" WITH (FORCE)')
        shutil.rmtree(base, ignore_errors=True)
