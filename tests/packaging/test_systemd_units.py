"""The systemd units of packaging/systemd/: systemd itself accepts them, each runs
/usr/bin/medark with a subcommand and options `medark` has, and each keeps the
hardening it documents."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import MEDARK
from package_builds import PACKAGING, ROOT

UNITS = PACKAGING / "systemd"
NAMES = ("medark-server.service", "medark-daemon.service", "medark-agent.service")
COMMANDS = {"medark-server.service": ["server"], "medark-daemon.service": ["daemon"],
            "medark-agent.service": ["agent", "run"]}


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}; a key may repeat (SystemCallFilter)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path.name}: {line!r} before a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict[str, dict[str, list[str]]], key: str) -> str:
    values = unit["Service"].get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def env_file(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value
    return found


def _medark_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env["MEDARK_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` on a scratch root that has /usr/bin/medark and systemd's
    own units: unknown keys, bad values and missing programs are reported on stderr."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    fake = root / "usr" / "bin" / "medark"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    shutil.copytree("/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system",
                    symlinks=True)
    target = root / "etc" / "systemd" / "system"
    target.mkdir(parents=True)
    for name in NAMES:
        shutil.copy2(UNITS / name, target / name)
    done = subprocess.run([analyze, "verify", "--man=no", f"--root={root}", *NAMES],
                          cwd=target, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_exec_start_is_a_medark_command(name: str, tmp_path: Path) -> None:
    unit = parse(UNITS / name)
    argv = shlex.split(one(unit, "ExecStart"))
    assert argv[0] == "/usr/bin/medark", argv
    words = [a for a in argv[1:] if not a.startswith(("-", "$"))]
    command = COMMANDS[name]
    assert words[:len(command)] == command, argv
    done = subprocess.run([MEDARK, *command, "--help"], env=_medark_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"`medark {' '.join(command)}` is not a command: " \
                                 f"{done.stderr}"
    for option in (a for a in argv if a.startswith("--")):
        assert option in done.stdout, f"{name}: {option} is not an option of " \
                                      f"`medark {' '.join(command)}`"
    # A catalog URL may hold a password: never on the command line (ps shows argv).
    assert "MEDARK_CATALOG" not in one(unit, "ExecStart")
    assert "postgresql://" not in (UNITS / name).read_text()


@pytest.mark.parametrize("name", NAMES)
def test_restart_and_hardening(name: str) -> None:
    unit = parse(UNITS / name)
    assert one(unit, "Restart") == "on-failure"
    # Only exits a restart cannot fix: usage (2), the configuration (15), a refused agent
    # credential (32); never the catalog (16), which a PostgreSQL still starting gives.
    assert set(one(unit, "RestartPreventExitStatus").split()) <= {"2", "15", "32"}
    for key, value in {"NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "ProtectKernelModules": "yes", "ProtectKernelTunables": "yes",
                       "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes"}.items():
        assert one(unit, key) == value, key
    assert one(unit, "ProtectSystem") in {"strict", "full"}
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in " ".join(unit["Unit"]["After"])
    text = (UNITS / name).read_text()
    if name == "medark-server.service":
        assert one(unit, "User") == "medark" and one(unit, "Group") == "medark"
        assert one(unit, "ProtectSystem") == "strict"
        assert one(unit, "ReadWritePaths") == "/var/lib/medark"
        assert one(unit, "CapabilityBoundingSet") == ""
        assert one(unit, "ProtectHome") == "yes"
    else:  # root, on purpose, and the unit says why
        assert "User" not in unit["Service"]
        assert re.search(r"^# It runs as root, on purpose|^# Root for the same reasons",
                         text, re.M), "the unit must say why it runs as root"
        assert one(unit, "KillMode") == "mixed"  # the daemon stops its own jobs


def test_server_environment_file_sets_what_exec_start_uses() -> None:
    unit = parse(UNITS / "medark-server.service")
    assert unit["Service"]["EnvironmentFile"] == ["/etc/medark/server.env"]
    used = set(re.findall(r"\$\{?(\w+)\}?", one(unit, "ExecStart")))
    defined = env_file(UNITS / "server.env")
    assert used <= set(defined), used - set(defined)
    assert defined["MEDARK_CATALOG"] == "sqlite:////var/lib/medark/catalog.sqlite"
    assert defined["MEDARK_LISTEN"].startswith("127.0.0.1:")  # no TLS configured yet


def test_the_units_are_in_the_deb_build() -> None:
    script = (ROOT / "packaging" / "deb" / "build.sh").read_text()
    assert "packaging/systemd/*.service" in script and "lib/systemd/system" in script
