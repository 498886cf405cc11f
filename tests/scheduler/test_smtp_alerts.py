"""Alert mail over TLS against a real SMTP server (aiosmtpd) on loopback, with a
certificate from a CA the test makes: STARTTLS with a login is the default and delivers
when the CA is trusted through `ca_file`; an unknown certificate, or a server without
STARTTLS, gets nothing (the password is never sent in clear, nor printed); SMTPS too."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medark.config.plans import AlertsConf
from medark.scheduler.notify import Notice, deliver

PASSWORD = "mail-Pa55-word"
NOTICE = Notice("job_failed:his:backup", "job_failed", "his", "firing",
                "[Medark] his: backup failed", "Error: disk full", {"kind": "backup"})


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_pki(where: Path) -> tuple[Path, Path, Path]:
    """A CA (ca.pem) and a certificate for 127.0.0.1 it signed (cert.pem, key.pem)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Medark test CA"))
          .issuer_name(_name("Medark test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = where / "ca.pem", where / "cert.pem", where / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[tuple[bytes, bytes, bool]] = []

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"

    def authenticate(self, _server: object, session: Any, _envelope: object, _mechanism: str,
                     data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password, session.ssl is not None))
        return AuthResult(success=data.password == PASSWORD.encode())


def _free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd's start() connects to its port: not 0
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    return _write_pki(tmp_path)


def _server(mailbox: Mailbox, pki: tuple[Path, Path, Path], mode: str) -> Controller:
    """mode: starttls (offered and required), smtps (TLS from the start) or plain."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki[1], pki[2])
    port = _free_port()
    kwargs: dict[str, Any] = {"authenticator": mailbox.authenticate}
    if mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif mode == "smtps":
        # aiosmtpd does not count implicit TLS as TLS for AUTH: the client's SMTP_SSL
        # handshake (verified against the CA) is what proves it here
        kwargs.update(ssl_context=context, server_hostname="127.0.0.1",
                      auth_require_tls=False)
    return Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield Mailbox()


def _alerts(port: int, tmp_path: Path, **email_settings: object) -> AlertsConf:
    password_file = tmp_path / "smtp-password"
    password_file.write_text(PASSWORD + "\n")
    return AlertsConf.model_validate({"tries": 1, "email": {
        "smtp": f"127.0.0.1:{port}", "sender": "medark@hospital.example",
        "to": ["it@hospital.example"], "username": "medark",
        "password_file": str(password_file), **email_settings}})


def test_starttls_with_the_hospital_ca_delivers(mailbox: Mailbox, pki: tuple[Path, Path, Path],
                                                tmp_path: Path) -> None:
    server = _server(mailbox, pki, "starttls")
    server.start()
    try:
        conf = _alerts(server.port, tmp_path, ca_file=str(pki[0]))  # starttls: the default
        assert conf.email is not None and conf.email.use_starttls
        failed, tries = deliver(conf, NOTICE)
    finally:
        server.stop()
    assert (failed, tries) == ({}, 1)
    assert mailbox.logins == [(b"medark", PASSWORD.encode(), True)]  # over TLS
    assert [m["Subject"] for m in mailbox.messages] == [NOTICE.title]


def test_a_certificate_no_trusted_ca_signed_gets_nothing(
        mailbox: Mailbox, pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    server = _server(mailbox, pki, "starttls")
    server.start()
    try:
        failed, _tries = deliver(_alerts(server.port, tmp_path), NOTICE)  # system CAs only
    finally:
        server.stop()
    assert list(failed) == ["email"] and "CERTIFICATE_VERIFY_FAILED" in failed["email"]
    assert PASSWORD not in failed["email"]
    assert mailbox.logins == [] and mailbox.messages == []


def test_a_server_without_starttls_never_sees_the_login(
        mailbox: Mailbox, pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    server = _server(mailbox, pki, "plain")
    server.start()
    try:
        failed, _tries = deliver(_alerts(server.port, tmp_path, ca_file=str(pki[0])), NOTICE)
    finally:
        server.stop()
    assert list(failed) == ["email"] and "STARTTLS" in failed["email"]
    assert mailbox.logins == [] and mailbox.messages == []


def test_smtps_delivers(mailbox: Mailbox, pki: tuple[Path, Path, Path],
                        tmp_path: Path) -> None:
    server = _server(mailbox, pki, "smtps")
    server.start()
    try:
        conf = _alerts(server.port, tmp_path, smtps=True, ca_file=str(pki[0]))
        failed, _tries = deliver(conf, NOTICE)
    finally:
        server.stop()
    assert failed == {}
    assert [login[:2] for login in mailbox.logins] == [(b"medark", PASSWORD.encode())]
    assert len(mailbox.messages) == 1
