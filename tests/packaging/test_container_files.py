"""packaging/container/: the compose file of a regional center parses and holds together
(every volume and secret it uses is declared, every service has a health check, the
server gets its keys as secrets), the Containerfile builds what the docs say, and the
image's HEALTHCHECK script tells a live `medark server` from a dead one. No container
runtime is needed: nothing is pulled or built here."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MEDARK, TEST_KDF
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from package_builds import PACKAGING, ROOT

CONTAINER = PACKAGING / "container"
HEALTHCHECK = CONTAINER / "healthcheck.py"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((CONTAINER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_services_and_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db", "objects", "medark"} <= set(services)
    assert re.fullmatch(r"(docker\.io/library/)?postgres:15(-\w+)?", services["db"]["image"])
    assert "minio" in services["objects"]["image"]
    for name in ("db", "objects", "medark"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1, name
        assert services[name]["restart"] == "unless-stopped", name
    medark = services["medark"]
    assert medark["depends_on"]["db"]["condition"] == "service_healthy"
    assert "/api/health" in " ".join(medark["healthcheck"]["test"])
    build = medark["build"]
    context = (CONTAINER / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()


def test_compose_volumes_and_secrets_are_declared(compose: dict[str, Any]) -> None:
    declared_volumes = set(compose["volumes"])
    declared_secrets = compose["secrets"]
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in declared_volumes, f"{name}: volume {source} not declared"
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            assert source in declared_secrets, f"{name}: secret {source} not declared"
    for secret in declared_secrets.values():
        assert secret["file"].startswith("./secrets/")  # beside compose.yaml, not in git
    assert {"db-data", "objects-data", "medark-state"} <= declared_volumes
    assert "/var/lib/postgresql/data" in compose["services"]["db"]["volumes"][0]


def test_the_server_gets_its_keys_and_passwords_as_secrets(compose: dict[str, Any]) -> None:
    medark = compose["services"]["medark"]
    env = medark["environment"]
    mounted = {s if isinstance(s, str) else s["source"] for s in medark["secrets"]}
    for variable, secret in (("MEDARK_AUDIT_KEY_FILE", "audit_key"),
                             ("MEDARK_SERVER_KEY_FILE", "server_key"),
                             ("PGPASSFILE", "catalog_pgpass")):
        assert env[variable] == f"/run/secrets/{secret}" and secret in mounted, variable
    catalog = env["MEDARK_CATALOG"]
    assert catalog.startswith("postgresql://") and ":" not in catalog.split("//")[1].split(
        "@")[0], "no password in the catalog URL"
    db_env = compose["services"]["db"]["environment"]
    assert db_env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert "POSTGRES_PASSWORD" not in db_env
    objects = compose["services"]["objects"]["environment"]
    assert objects["MINIO_ROOT_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "--with-lock" in " ".join(compose["services"]["buckets"]["command"])
    for service in compose["services"].values():
        for value in (service.get("environment") or {}).values():
            assert "password=" not in str(value).lower()


def _containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (CONTAINER / "Containerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def test_containerfile() -> None:
    steps = _containerfile()
    froms = [args for op, args in steps if op == "FROM"]
    assert froms and all(f.split()[0] == "debian:bookworm-slim" for f in froms), froms
    final = steps[max(i for i, (op, _a) in enumerate(steps) if op == "FROM"):]
    user = [args for op, args in final if op == "USER"]
    assert user and user[-1].split(":")[0] not in {"root", "0"}, user
    entry = [args for op, args in final if op == "ENTRYPOINT"]
    assert entry == ['["/opt/medark/bin/medark"]'], entry
    cmd = [args for op, args in final if op == "CMD"][-1]
    assert cmd.startswith('["server"') and "--tls-cert" in cmd, cmd
    health = [args for op, args in final if op == "HEALTHCHECK"]
    assert health and "/api/health" in health[0] and "healthcheck.py" in health[0]
    for op, args in steps:  # every file copied from the context exists
        if op == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (ROOT / source).exists(), source
    run = " ".join(args for op, args in steps if op == "RUN")
    assert "pip wheel" in run and "/dist/medark-*.whl" in run  # the wheel, as pipx uses


def _tls_files(tmp: Path) -> tuple[Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "center.example")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp / "tls.pem").write_bytes(cert.public_bytes(pem))
    (tmp / "tls.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp / "tls.key").chmod(0o600)
    return tmp / "tls.pem", tmp / "tls.key"


def _probe(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK), url], capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_healthcheck_script_against_a_live_server(tmp_path: Path) -> None:
    """The certificate names another host (as the center's does): the loopback probe
    still passes; once the server has stopped it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF)
    env["MEDARK_CACHE_DIR"] = str(tmp_path / "cache")
    env["MEDARK_AUDIT_KEY_FILE"] = str(tmp_path / "audit.key")
    env["MEDARK_CATALOG"] = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    init = subprocess.run([MEDARK, "server", "init"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    cert, key = _tls_files(tmp_path)
    proc = subprocess.Popen([MEDARK, "server", "--listen", "127.0.0.1:0", "--tls-cert",
                             str(cert), "--tls-key", str(key)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.search(r"management server at (https://\S+)/api ", banner)
        assert found, banner
        url = f"{found.group(1)}/api/health"
        healthy = _probe(url)
        assert healthy.returncode == 0, healthy.stderr
        assert "'status': 'ok'" in healthy.stdout
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    dead = _probe(url)
    assert dead.returncode == 1 and dead.stderr.startswith("unhealthy: "), dead.stderr
    assert "Traceback" not in dead.stderr
