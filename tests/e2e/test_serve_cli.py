"""`medark serve`, safe by default (issue 13): append-only and loopback-only without an
auth file; full access only with --full-access and an auth file of argon2id hashes;
beyond loopback only with TLS and an auth file; the rest: client over verified https.
A stolen backup credential can add but never delete or overwrite; the administrator's
can prune."""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import ipaddress
import os
import re
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, Cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], banner: str) -> None:
        self.proc = proc
        self.banner = banner
        match = re.search(r"rest:(https?)://([^/]+)/", banner)
        assert match, banner
        self.scheme, self.address = match.group(1), match.group(2)
        self.port = int(self.address.rpartition(":")[2])

    def url(self, host: str = "127.0.0.1") -> str:
        return f"rest:{self.scheme}://{host}:{self.port}/"

    def stop(self) -> str:
        """SIGTERM; the server must exit 0. Its standard error."""
        if self.proc.returncode is None:
            self.proc.terminate()
            _out, err = self.proc.communicate(timeout=30)
            self.stderr = err.decode()
            assert self.proc.returncode == 0, self.stderr
            assert "Traceback" not in self.stderr, self.stderr
        return self.stderr


StartServer = Callable[..., Server]


@pytest.fixture
def start(cli: Cli, tmp_path: Path) -> Iterator[StartServer]:
    """Starts `medark serve --path <tmp>/served ARGS`; returns once it prints its banner."""
    servers: list[Server] = []

    def _start(*args: str | Path, listen: str = "127.0.0.1:0") -> Server:
        proc = subprocess.Popen([MEDARK, "serve", "--path", str(tmp_path / "served"),
                                 "--listen", listen, *map(str, args)],
                                env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        banner = proc.stdout.readline().decode()
        assert banner.startswith("serving "), proc.communicate(timeout=30)
        servers.append(Server(proc, banner))
        return servers[-1]

    yield _start
    for server in servers:
        server.stop()


def _raw(server: Server, method: str, path: str, auth: tuple[str, str] | None = None,
         body: bytes | None = None, context: ssl.SSLContext | None = None) -> int:
    conn: http.client.HTTPConnection
    if server.scheme == "https":
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=60,
                                           context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn.request(method, path, body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def _auth_file(cli: Cli, path: Path, users: dict[str, tuple[str, str]]) -> Path:
    """Lines made by `medark serve hash-password`, the password on standard input."""
    lines = ["# user:$argon2id$...:mode"]
    for name, (password, mode) in users.items():
        made = cli("serve", "hash-password", "--user", name, "--mode", mode,
                   input=f"{password}\n".encode(), password=None)
        line = made.stdout.strip()
        assert line.startswith(f"{name}:$argon2id$") and line.endswith(f":{mode}")
        assert password not in line
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def users(cli: Cli, tmp_path: Path) -> Path:
    return _auth_file(cli, tmp_path / "users", {"backup": ("backup-token", "append-only"),
                                                "admin": ("admin-token", "full")})


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "ct.dcm").write_bytes(os.urandom(2_000_000))
    return data


def test_without_an_auth_file_clients_cannot_delete(cli: Cli, start: StartServer,
                                                    tmp_path: Path) -> None:
    server = start()
    assert "(append-only, loopback only)" in server.banner
    assert server.scheme == "http"
    cli.env["MEDARK_REPO"] = server.url()
    cli("init")
    data = _data(tmp_path)
    cli("backup", data)
    (data / "report.txt").write_text("findings\n")
    cli("backup", data)
    keys = list((tmp_path / "served" / "keys").iterdir())
    assert len(keys) == 1
    snapshot = cli("snapshots", "--json").json()[0]["id"]

    # any local process, no credentials: no delete, no overwrite
    assert _raw(server, "DELETE", f"/keys/{keys[0].name}") == 403
    assert _raw(server, "DELETE", f"/snapshots/{snapshot}") == 403
    assert _raw(server, "PUT", f"/keys/{keys[0].name}", body=b"garbage") == 409
    assert keys[0].exists()
    forget = cli("forget", "--keep-last", "1", "--prune")
    assert "append-only" in forget.stdout
    assert len(cli("snapshots", "--json").json()) == 2
    cli("check", "--read-data")
    # and it said so when it started, in one line
    warning = server.stop().strip().splitlines()
    assert len(warning) == 1 and "serving append-only without an auth file" in warning[0]


def test_a_backup_credential_cannot_destroy_backups(cli: Cli, start: StartServer,
                                                    users: Path, tmp_path: Path) -> None:
    server = start("--auth-file", users, "--full-access")
    assert "(per user, loopback only)" in server.banner
    cli.env.update(MEDARK_REPO=server.url(), MEDARK_REST_USER="backup",
                   MEDARK_REST_PASSWORD="backup-token")
    data = _data(tmp_path)
    cli("init")
    cli("backup", data)
    (data / "report.txt").write_text("findings\n")
    cli("backup", data)
    snaps = cli("snapshots", "--json").json()
    assert len(snaps) == 2

    # ransomware on the backup host, with the backup credential: forget and prune
    attack = cli("forget", "--keep-last", "1", "--prune")
    assert "append-only" in attack.stdout
    assert len(cli("snapshots", "--json").json()) == 2
    # and straight through the protocol: no delete, no overwrite, no wrong password
    name = f"/snapshots/{snaps[0]['id']}"
    assert _raw(server, "DELETE", name, ("backup", "backup-token")) == 403
    assert _raw(server, "PUT", name, ("backup", "backup-token"), b"garbage") == 409
    assert _raw(server, "DELETE", name, ("admin", "wrong")) == 401
    assert _raw(server, "GET", "/?exists", ("nobody", "admin-token")) == 401
    assert _raw(server, "GET", "/?exists") == 401
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


def test_full_users_stay_append_only_without_full_access(cli: Cli, start: StartServer,
                                                         users: Path) -> None:
    server = start("--auth-file", users)
    cli.env.update(MEDARK_REPO=server.url(), MEDARK_REST_USER="admin",
                   MEDARK_REST_PASSWORD="admin-token")
    cli("init")
    assert _raw(server, "DELETE", "/config", ("admin", "admin-token")) == 403
    assert "admin: `full` in the auth file but served append-only" in server.stop()


def _old_sha256_users(path: Path) -> Path:
    digest = hashlib.sha256(b"backup-token").hexdigest()
    path.write_text(f"# user:sha256:mode\nbackup:{digest}:append-only\n")
    return path


@pytest.mark.parametrize("args, expected", [
    (["--listen", "0.0.0.0:0"],
     "--listen 0.0.0.0:0 is beyond loopback: that needs TLS and an auth file; missing TLS "
     "(--tls-cert and --tls-key) and an auth file (--auth-file)"),
    (["--listen", ":0", "--auth-file", "USERS"], "missing TLS (--tls-cert and --tls-key)"),
    (["--listen", "[::]:0", "--tls-cert", "CERT", "--tls-key", "KEY"],
     "missing an auth file (--auth-file)"),
    (["--full-access"], "--full-access needs --auth-file"),
    (["--tls-cert", "CERT"], "TLS needs both --tls-cert FILE and --tls-key FILE"),
    (["--auth-file", "OLD"], "OLD:2: user backup has an unsalted SHA-256 hash, no longer "
     "accepted; make a new line with `medark serve hash-password --user NAME --mode MODE`"),
    (["--append-only", "--full-access"], "not allowed with argument"),
])
def test_unsafe_setups_are_refused_with_one_line(cli: Cli, users: Path, tmp_path: Path,
                                                 args: list[str], expected: str) -> None:
    cert, key = _certificates(tmp_path)[1:]
    old = _old_sha256_users(tmp_path / "old-users")
    names = {"USERS": str(users), "CERT": str(cert), "KEY": str(key), "OLD": str(old)}
    args = [names.get(a, a) for a in args]
    expected = expected.replace("OLD", str(old))
    refused = cli("serve", "--path", tmp_path / "served", *args, check=False, password=None,
                  timeout=60)
    assert refused.returncode == 2, refused
    assert expected in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "backup-token" not in refused.stderr


def test_bad_credentials_and_locations_get_one_line(cli: Cli, start: StartServer,
                                                    users: Path) -> None:
    server = start("--auth-file", users)
    cli.env.update(MEDARK_REPO=server.url(), MEDARK_REST_USER="backup",
                   MEDARK_REST_PASSWORD="wrong")
    refused = cli("init", check=False)
    assert refused.returncode == 1 and "refused the credentials" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    inline = cli("-r", f"rest:http://backup:secret@127.0.0.1:{server.port}/", "snapshots",
                 check=False, password=PASSWORD)
    assert inline.returncode == 2 and "MEDARK_REST_USER" in inline.stderr
    bad_auth = Path(cli.repo).parent / "bad-users"
    bad_auth.write_text("backup:nothex:append-only\n")
    bad = cli("serve", "--path", Path(cli.repo).parent / "x", "--auth-file", bad_auth,
              check=False)
    assert bad.returncode == 2 and "bad-users:1" in bad.stderr
    assert "not an argon2id hash" in bad.stderr


def _certificates(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    if (tmp_path / "ca.pem").exists():
        return tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Medark test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"


def test_tls_end_to_end_with_the_rest_backend(cli: Cli, start: StartServer, users: Path,
                                              tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    # beyond loopback is allowed with TLS and an auth file
    server = start("--auth-file", users, "--full-access", "--tls-cert", cert,
                   "--tls-key", key, listen="0.0.0.0:0")
    assert server.scheme == "https" and "(per user, all networks)" in server.banner
    cli.env.update(MEDARK_REPO=server.url(), MEDARK_REST_USER="backup",
                   MEDARK_REST_PASSWORD="backup-token")

    # the certificate is verified: without the private CA, one line and no retries
    untrusted = cli("init", check=False)
    assert untrusted.returncode == 1
    assert "does not verify" in untrusted.stderr and "--cacert" in untrusted.stderr
    assert len(untrusted.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "served" / "config").exists()

    cli("--cacert", ca, "init")
    cli.env["MEDARK_CACERT"] = str(ca)
    data = _data(tmp_path)
    cli("backup", data)
    snaps = cli("snapshots", "--json").json()
    assert len(snaps) == 1
    cli("restore", "latest", "--target", tmp_path / "out")
    restored = tmp_path / "out" / str(data).lstrip("/") / "ct.dcm"
    assert restored.read_bytes() == (data / "ct.dcm").read_bytes()
    cli("check", "--read-data")

    # plain HTTP to the TLS port gets nowhere; the backup user still cannot delete
    context = ssl.create_default_context(cafile=str(ca))
    name = f"/snapshots/{snaps[0]['id']}"
    assert _raw(server, "DELETE", name, ("backup", "backup-token"), context=context) == 403
    assert _raw(server, "DELETE", name, ("backup", "nope"), context=context) == 401
    assert _raw(server, "DELETE", name, ("admin", "admin-token"), context=context) == 204
    with pytest.raises((http.client.HTTPException, OSError)):
        _raw(Server(server.proc, server.banner.replace("https", "http")), "GET", "/?exists")
