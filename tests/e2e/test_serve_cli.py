"""`medark serve`: an append-only repository server on a local directory. A stolen
backup credential can add but never delete or overwrite; the administrator's can prune."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, Cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def server(cli: Cli, tmp_path: Path) -> Iterator[str]:
    auth = tmp_path / "users"
    auth.write_text(f"# user:sha256:mode\nbackup:{_sha('backup-token')}:append-only\n"
                    f"admin:{_sha('admin-token')}:full\n")
    port = _free_port()
    proc = subprocess.Popen([MEDARK, "serve", "--path", str(tmp_path / "served"), "--listen",
                             f"127.0.0.1:{port}", "--auth-file", str(auth)],
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    cli.env.update(MEDARK_REPO=f"rest:http://127.0.0.1:{port}/", MEDARK_REST_USER="backup",
                   MEDARK_REST_PASSWORD="backup-token")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        assert proc.returncode == 0


def _raw(address: str, method: str, path: str, user: str, password: str,
         body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection(address, timeout=30)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn.request(method, path, body=body, headers={"Authorization": f"Basic {token}"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_backup_credential_cannot_destroy_backups(cli: Cli, server: str,
                                                    tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ct.dcm").write_bytes(os.urandom(2_000_000))
    cli("init")
    cli("backup", data)
    (data / "report.txt").write_text("findings\n")
    cli("backup", data)
    snaps = cli("snapshots", "--json").json()
    assert len(snaps) == 2

    # ransomware on the backup host, with the backup credential: forget and prune
    attack = cli("forget", "--keep-last", "1", "--prune")
    assert attack.returncode == 0
    assert "append-only" in attack.stdout
    assert len(cli("snapshots", "--json").json()) == 2
    # and straight through the protocol: no delete, no overwrite
    name = f"/snapshots/{snaps[0]['id']}"
    assert _raw(server, "DELETE", name, "backup", "backup-token") == 403
    assert _raw(server, "PUT", name, "backup", "backup-token", b"garbage") == 409
    assert _raw(server, "DELETE", name, "backup", "wrong") == 401
    cli("check", "--read-data")
    cli("restore", snaps[0]["id"], "--target", tmp_path / "out")
    restored = tmp_path / "out" / str(data).lstrip("/") / "ct.dcm"
    assert restored.read_bytes() == (data / "ct.dcm").read_bytes()

    # the administrator's credential (from a file) may prune
    token = tmp_path / "admin-token"
    token.write_text("admin-token\n")
    del cli.env["MEDARK_REST_PASSWORD"]
    cli.env.update(MEDARK_REST_USER="admin", MEDARK_REST_PASSWORD_FILE=str(token))
    cli("forget", "--keep-last", "1", "--prune")
    assert len(cli("snapshots", "--json").json()) == 1
    cli("check", "--read-data")


def test_bad_credentials_and_locations_get_one_line(cli: Cli, server: str) -> None:
    cli.env["MEDARK_REST_PASSWORD"] = "wrong"
    refused = cli("init", check=False)
    assert refused.returncode == 1 and "refused the credentials" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    inline = cli("-r", f"rest:http://backup:secret@{server}/", "snapshots", check=False,
                 password=PASSWORD)
    assert inline.returncode == 2 and "MEDARK_REST_USER" in inline.stderr
    bad_auth = Path(cli.repo).parent / "bad-users"
    bad_auth.write_text("backup:nothex:append-only\n")
    bad = cli("serve", "--path", Path(cli.repo).parent / "x", "--auth-file", bad_auth,
              check=False)
    assert bad.returncode == 2 and "bad-users:1" in bad.stderr
