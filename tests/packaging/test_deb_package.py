"""packaging/deb/build.sh really builds the .deb (dpkg-deb), and what it built is a
package: control fields, files, the units, maintainer scripts, and a virtualenv whose
`medark` runs. Built without the report extra and uncompressed, to stay quick; the
virtualenv's wheels come from a wheelhouse kept between sessions (build.sh --wheelhouse)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from package_builds import PACKAGING, ROOT, build_cache, build_env, build_wheel, fast_tmp

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
UNITS = ("medark-server.service", "medark-daemon.service", "medark-agent.service")


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="medark-deb-test-", dir=fast_tmp()))
    yield work
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def deb(scratch: Path) -> Path:
    work = scratch / "build"
    wheel = build_wheel(work / "wheel")
    done = subprocess.run(
        ["bash", str(PACKAGING / "deb" / "build.sh"), "--out", str(work / "out"),
         "--wheel", str(wheel), "--extras", "", "--compression", "none",
         "--wheelhouse", str(build_cache() / "wheelhouse")],
        env=build_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    built = work / "out" / f"medark_{VERSION}_{_arch()}.deb"
    assert built.is_file(), done.stdout
    assert done.stdout.strip().splitlines()[-1] == str(built)
    return built


@pytest.fixture(scope="module")
def unpacked(deb: Path, scratch: Path) -> Path:
    root = scratch / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", str(deb), str(root / "DEBIAN")], check=True)
    return root


def _control(deb: Path) -> dict[str, str]:
    text = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    return dict(re.findall(r"^(\S+): (.*)$", text, re.M))


def test_control_fields(deb: Path) -> None:
    control = _control(deb)
    assert control["Package"] == "medark"
    assert control["Version"] == VERSION
    assert control["Architecture"] == _arch()  # compiled wheels inside
    depends = control["Depends"]
    assert re.search(r"python3 \(>= 3\.1[1-9]\)", depends), depends
    assert re.search(r"python3 \(<< 3\.\d+\)", depends), depends  # the venv's minor version
    assert "adduser" in depends
    for package in ("postgresql-client", "mariadb-client", "mariadb-backup",
                    "fonts-noto-cjk"):
        assert package in control["Recommends"], package
    assert int(control["Installed-Size"]) > 10_000  # KiB: the virtualenv is inside


def _listing(deb: Path) -> dict[str, tuple[str, str, str]]:
    """`dpkg-deb -c`: {path: (mode string, owner/group, link target or "")}."""
    text = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    found = {}
    for line in text.splitlines():
        mode, owner, _size, _day, _time, rest = line.split(None, 5)
        name, _, target = rest.partition(" -> ")
        found[name.removeprefix("./").rstrip("/")] = (mode, owner, target)
    return found


def test_files_and_modes(deb: Path) -> None:
    members = _listing(deb)
    mode, _owner, target = members["usr/bin/medark"]
    assert mode.startswith("l") and target == "/opt/medark/bin/medark"
    assert members["opt/medark/bin/medark"][0] == "-rwxr-xr-x"
    for unit in UNITS:
        assert members[f"lib/systemd/system/{unit}"][0] == "-rw-r--r--", unit
    assert members["etc/medark/server.env"][0] == "-rw-r-----"  # may hold a password
    assert {owner for _mode, owner, _target in members.values()} == {"root/root"}
    site = [n for n in members if re.match(r"opt/medark/lib/python3\.\d+/site-packages/"
                                           r"medark/", n)]
    assert any(n.endswith("server/static/swagger-ui/swagger-ui-bundle.js") for n in site)
    assert any(n.endswith("catalog/migrations/versions/0001_jobs.py") for n in site)
    assert not [n for n in members if "__pycache__" in n]  # postinst compiles
    assert not [n for n in members if "site-packages/pip/" in n]  # nothing installs there
    assert "usr/share/doc/medark/deployment.md" in members


def test_maintainer_scripts(unpacked: Path) -> None:
    control = unpacked / "DEBIAN"
    assert (control / "conffiles").read_text().split() == ["/etc/medark/server.env"]
    for name in ("postinst", "prerm", "postrm"):
        script = control / name
        assert os.access(script, os.X_OK), name
        done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, f"{name}: {done.stderr}"
    postinst = (control / "postinst").read_text()
    assert re.search(r"adduser --system .*medark", postinst.replace("\\\n", " "))
    assert "install -d -m 0750 -o medark -g medark /var/lib/medark" in postinst
    assert "install -d -m 0750 -o root -g medark /etc/medark" in postinst
    assert "compileall" in postinst and "daemon-reload" in postinst
    code = "\n".join(line for line in postinst.splitlines()
                     if not line.lstrip().startswith("#"))
    assert "systemctl enable" not in code  # the units need configuration first
    assert "__pycache__" in (control / "prerm").read_text()
    assert "/var/lib/medark" not in (control / "postrm").read_text().split("rm ", 1)[-1]


def test_the_virtualenv_runs(unpacked: Path, tmp_path: Path) -> None:
    """The shipped virtualenv, run from where it was unpacked: its scripts name
    /opt/medark, not the build's scratch directory, and its medark is the packaged one."""
    venv = unpacked / "opt" / "medark"
    python = venv / "bin" / "python"
    assert os.readlink(venv / "bin" / "python3") == "/usr/bin/python3"
    script = (venv / "bin" / "medark").read_text()
    assert script.splitlines()[0] == "#!/opt/medark/bin/python", script
    for path in (venv / "bin").iterdir():
        if path.is_file() and not path.is_symlink():
            assert "/tmp" not in path.read_text(errors="replace"), path
    assert "/tmp" not in (venv / "pyvenv.cfg").read_text()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEDARK_", "PYTHON", "COV", "VIRTUAL_ENV"))}
    env["MEDARK_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run([str(python), str(venv / "bin" / "medark"), "--version"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert VERSION in done.stdout
    where = subprocess.run([str(python), "-c", "import medark; print(medark.__file__)"],
                           env=env, capture_output=True, text=True, timeout=60, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout


STUBBED = ("getent", "addgroup", "adduser", "install", "chown", "chmod", "systemctl", "rm",
           "rmdir", "find")
"""Every command the maintainer scripts run, replaced by one that only records its
arguments: the scripts run for real as shell, and change nothing on this machine."""


def _run_script(script: Path, tmp: Path, *args: str, known: bool = False
                ) -> list[list[str]]:
    stubs = tmp / "stubs"
    stubs.mkdir(exist_ok=True)
    log = tmp / "calls.log"
    log.write_text("")
    for name in STUBBED:
        status = 0 if name != "getent" or known else 2  # getent: 2 = no such user
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\nprintf "%s\\0" {name} "$@" >> {log}\n'
                        f'printf "\\n" >> {log}\nexit {status}\n')
        stub.chmod(0o755)
    done = subprocess.run(["sh", str(script), *args], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={"PATH": f"{stubs}:/usr/sbin:/usr/bin:/sbin:/bin"})
    assert done.returncode == 0, done.stderr
    return [line.rstrip("\0").split("\0") for line in log.read_text().splitlines() if line]


def test_postinst_makes_the_user_and_directories(unpacked: Path, tmp_path: Path) -> None:
    calls = _run_script(unpacked / "DEBIAN" / "postinst", tmp_path, "configure")
    commands = [c[0] for c in calls]
    assert ["addgroup", "--system", "--quiet", "medark"] in calls
    adduser = next(c for c in calls if c[0] == "adduser")
    assert "--system" in adduser and adduser[-1] == "medark"
    assert adduser[adduser.index("--home") + 1] == "/var/lib/medark"
    assert adduser[adduser.index("--shell") + 1] == "/usr/sbin/nologin"
    assert commands.index("addgroup") < commands.index("adduser")
    made = {c[-1]: c[1:-1] for c in calls if c[:2] == ["install", "-d"]}
    if made:  # directories that do not exist on this machine
        for path, options in made.items():
            mode = options[options.index("-m") + 1]
            assert mode in {"0750", "0700"}, (path, mode)
    assert "systemctl" not in commands or ["systemctl", "daemon-reload"] in calls
    # Known user (an upgrade): nothing is created again.
    again = _run_script(unpacked / "DEBIAN" / "postinst", tmp_path, "configure", "0.0.9",
                        known=True)
    assert not [c for c in again if c[0] in {"addgroup", "adduser"}]


def test_prerm_and_postrm_keep_the_records(unpacked: Path, tmp_path: Path) -> None:
    calls = _run_script(unpacked / "DEBIAN" / "prerm", tmp_path, "remove")
    assert ["find", "/opt/medark", "-name", "__pycache__", "-type", "d", "-prune", "-exec",
            "rm", "-rf", "{}", "+"] in calls
    purged = _run_script(unpacked / "DEBIAN" / "postrm", tmp_path, "purge")
    touched = [arg for call in purged for arg in call[1:]]
    assert not [a for a in touched if a.startswith("/var/lib/medark")], purged
