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
    data_set(part10_bytes)                  # the bytes after the file meta, to compare
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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
        self._http = httpx.Client(base_url=self.http_url, timeout=30.0)
        wait_for(self._answers, timeout=timeout, what="Orthanc's /system",
                 detail=self.log)

    def _answers(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
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
