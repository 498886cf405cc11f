"""A scripted network device for tests: Debian's OpenSSH server (`/usr/sbin/sshd -D`)
on a free loopback port, with its own host key, whose forced command is this file run
as a fake vendor CLI: Huawei VRP ("huawei"), Cisco IOS ("cisco"), H3C Comware ("h3c")
or Ruijie RGOS ("ruijie").

The fake CLI prints the vendor's login banner and prompt, pages its output
("  ---- More ----" / " --More-- ", a key to go on, then erased as the vendor does)
until the vendor's paging-off command is given, answers the configuration command with
the text in `config.txt` framed by the vendor's header, including a timestamp line that
changes on every call, and answers anything else with the vendor's error line. It
answers the commands netmiko's device type sends while preparing the session (Comware:
`screen-length disable` after an optional "Press Y or ENTER to continue" banner; RGOS:
`terminal width 256`, `terminal length 0`). Every command it received is appended to
`commands.log` in its directory (the order a test can check).

    with running_device(tmp, vendor="huawei") as dev:
        dev.port, dev.known_hosts, dev.client_key, dev.user
        dev.set_config(text)             # what the next fetch sees
        dev.fetches()                    # how many times the config was printed
        dev.other_host_key()             # a known_hosts file with a wrong key for it
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
HUAWEI_CONFIG = """!Software Version V200R011C10SPC500
#
sysname HIS-CORE
#
vlan batch 10 20 30
#
interface GigabitEthernet0/0/1
 description PACS storage
 port link-type access
 port default vlan 20
#
interface GigabitEthernet0/0/2
 description HIS database
 port link-type access
 port default vlan 10
#
""" + "".join(f"interface GigabitEthernet0/0/{n}\n shutdown\n#\n" for n in range(3, 20)) + \
    "return\n"
CISCO_CONFIG = """version 15.2
hostname CORE-SW1
!
interface GigabitEthernet0/1
 description HIS-DB uplink
 switchport access vlan 20
!
""" + "".join(f"interface GigabitEthernet0/{n}\n shutdown\n!\n" for n in range(2, 20)) + \
    "ntp server 10.0.0.1\nend\n"
H3C_CONFIG = """#
 version 7.1.070, Release 6309P01
#
 sysname H3C
#
 clock timezone Beijing add 08:00:00
 clock protocol ntp
#
vlan 10
 name HIS
#
vlan 20
 name PACS
#
interface GigabitEthernet1/0/1
 port link-mode bridge
 description PACS storage
 port access vlan 20
#
""" + "".join(f"interface GigabitEthernet1/0/{n}\n port link-mode bridge\n shutdown\n#\n"
              for n in range(2, 20)) + " ntp-service unicast-server 10.0.0.1\n#\nreturn\n"
RUIJIE_CONFIG = """version RGOS 10.4(3b17)p2 Release(185432)(Tue Jan 12 10:12:25 CST 2016 -ngcf67)
hostname Ruijie
!
vlan 10
 name HIS
!
vlan 20
 name PACS
!
interface GigabitEthernet 0/1
 switchport access vlan 20
 description PACS storage
!
""" + "".join(f"interface GigabitEthernet 0/{n}\n shutdown\n!\n" for n in range(2, 20)) + \
    "ntp server 10.0.0.1\n!\nend\n"
CONFIGS = {"huawei": HUAWEI_CONFIG, "cisco": CISCO_CONFIG, "h3c": H3C_CONFIG,
           "ruijie": RUIJIE_CONFIG}


def can_run_sshd() -> str | None:
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (Debian package openssh-server)"
    if os.geteuid() != 0:
        return "the scripted device logs in as root, which needs root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Device:
    dir: Path
    port: int
    vendor: str
    known_hosts: Path
    client_key: Path
    user: str = "root"

    def set_config(self, text: str) -> None:
        tmp = self.dir / "config.txt.tmp"
        tmp.write_text(text)
        tmp.replace(self.dir / "config.txt")

    def fetches(self) -> int:
        counter = self.dir / "fetches"
        return int(counter.read_text()) if counter.exists() else 0

    def other_host_key(self) -> Path:
        """A known_hosts naming this device with another key (a replaced device)."""
        other = self.dir / "other_key"
        if not other.exists():
            _keygen(other)
        path = self.dir / "wrong_known_hosts"
        key = (other.with_suffix(".pub")).read_text().split()[:2]
        path.write_text(f"[127.0.0.1]:{self.port} {' '.join(key)}\n")
        return path


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, capture_output=True)
    path.chmod(0o600)


@contextlib.contextmanager
def running_device(workdir: Path, vendor: str = "huawei",
                   sshd_options: str = "") -> Iterator[Device]:
    """`sshd_options`: lines added to its sshd_config (e.g. "PermitTTY no": the login
    succeeds, the interactive shell is refused)."""
    if vendor not in CLIS:
        raise ValueError(f"unknown vendor {vendor!r} (known: {', '.join(CLIS)})")
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "host_key", workdir / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    (workdir / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    port = _free_port()
    (workdir / "vendor").write_text(vendor)
    device = Device(workdir, port, vendor, workdir / "known_hosts", client_key)
    device.set_config(CONFIGS[vendor])
    pub = host_key.with_suffix(".pub").read_text().split()[:2]
    device.known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(pub)}\n")
    script = f"{sys.executable} {Path(__file__).resolve()} --serve {workdir}"
    config = workdir / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {workdir / 'sshd.pid'}
AuthorizedKeysFile {workdir / 'authorized_keys'}
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
MaxAuthTries 3
MaxStartups 256
LoginGraceTime 20
ForceCommand {script}
LogLevel ERROR
{sshd_options}
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    log = (workdir / "sshd.log").open("w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sshd did not start: "
                                   + (workdir / "sshd.log").read_text()[-2000:])
            time.sleep(0.05)
        yield device
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---- the fake vendor CLI (run by sshd as the forced command) ------------------------

@dataclass(frozen=True)
class _Cli:
    """How one vendor's CLI looks to netmiko."""

    prompt: str
    paging_off: str
    show: str
    greeting: str
    more: str
    erase: str
    """What the CLI prints after a key to wipe the paging prompt."""
    error: str
    quiet: tuple[str, ...]
    """Command prefixes accepted without an answer."""
    paging_reply: str = ""
    confirm: str = ""
    """A banner question answered before the first prompt (Comware's header legal)."""


_COMWARE_BANNER = (
    "\r\n******************************************************************************"
    "\r\n* Copyright (c) 2004-2026 New H3C Technologies Co., Ltd. All rights reserved.*"
    "\r\n* Without the owner's prior written consent,                                 *"
    "\r\n* no decompiling or reverse-engineering shall be allowed.                    *"
    "\r\n******************************************************************************"
    "\r\n\r\n")
CLIS = {
    "huawei": _Cli("<HIS-CORE>", "screen-length 0 temporary", "display current-configuration",
                   "\r\nInfo: The max number of VTY users is 10.\r\n\r\n", "  ---- More ----",
                   "\x1b[42D" + " " * 42 + "\x1b[42D",
                   "                  ^\r\nError: Unrecognized command found at '^' "
                   "position.\r\n", ("screen-width", "display"),
                   paging_reply="Info: The configuration takes effect on the current user "
                   "terminal interface only.\r\n"),
    "cisco": _Cli("CORE-SW1#", "terminal length 0", "show running-config", "\r\n",
                  " --More-- ", "\r", "% Invalid input detected at '^' marker.\r\n",
                  ("terminal",)),
    # Comware 7: a legal header asks to continue; `screen-length disable` answers nothing
    "h3c": _Cli("<H3C>", "screen-length disable", "display current-configuration",
                _COMWARE_BANNER, "  ---- More ----", "\x1b[16D" + " " * 16 + "\x1b[16D",
                "                  ^\r\n % Unrecognized command found at '^' position.\r\n",
                ("display",), confirm="Press Y or ENTER to continue, N to exit.\r\n"),
    # RGOS: netmiko sends `terminal width 256`, then `terminal length 0`
    "ruijie": _Cli("Ruijie#", "terminal length 0", "show running-config", "\r\n",
                   " --More-- ", "\x08" * 10 + " " * 10 + "\x08" * 10,
                   "% Unknown command.\r\n", ("terminal",)),
}


def _serve(workdir: Path) -> None:
    vendor = (workdir / "vendor").read_text()
    cli = CLIS[vendor]
    paging = True
    out = sys.stdout
    reader = _Terminal()
    out.write(cli.greeting)
    if cli.confirm:
        out.write(cli.confirm)
        out.flush()
        answer = reader.readline()
        if answer is None or answer.strip().lower().startswith("n"):
            return
    while True:
        out.write(cli.prompt)
        out.flush()
        line = reader.readline()
        if line is None:
            return
        command = " ".join(line.split())
        with (workdir / "commands.log").open("a") as log:
            log.write(command + "\n")
        if not command:
            continue
        if command in ("quit", "exit", "logout"):
            return
        if command == cli.paging_off:
            paging = False
            out.write(cli.paging_reply)
            continue
        if command == cli.show:
            lines = _configuration(workdir, vendor)
            for i, text in enumerate(lines, 1):
                out.write(text + "\r\n")
                if paging and i % 24 == 0:
                    out.write(cli.more)
                    out.flush()
                    if reader.key() is None:
                        return
                    out.write(cli.erase)
            continue
        if command.startswith(cli.quiet):
            continue
        out.write(cli.error)


class _Terminal:
    """A device's line editor: the terminal in raw mode, each key echoed by the CLI
    itself (as a switch does), so the prompt follows the echoed newline."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        if os.isatty(self.fd):
            import termios
            import tty

            tty.setraw(self.fd, termios.TCSANOW)  # TCSAFLUSH would drop what was typed
        self._last = b""

    def _byte(self) -> bytes | None:
        data = os.read(self.fd, 1)
        return data or None

    def key(self) -> bytes | None:
        return self._byte()

    def readline(self) -> str | None:
        buf = bytearray()
        while True:
            ch = self._byte()
            if ch is None or ch in (b"\x03", b"\x04"):
                return None
            if ch == b"\n" and self._last == b"\r":  # the second half of CR LF
                self._last = ch
                continue
            self._last = ch
            if ch in (b"\r", b"\n"):
                sys.stdout.write("\r\n")
                return buf.decode("utf-8", errors="replace")
            if ch in (b"\x7f", b"\x08"):
                if buf:
                    buf.pop()
                    sys.stdout.write("\b \b")
                continue
            buf += ch
            sys.stdout.write(ch.decode("latin-1"))
            sys.stdout.flush()


def _configuration(workdir: Path, vendor: str) -> list[str]:
    counter = workdir / "fetches"
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    now = datetime.datetime.now(datetime.UTC)
    body = (workdir / "config.txt").read_text().splitlines()
    if vendor == "huawei":  # VRP's header: the update time changes with every fetch here
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        return [body[0], f"!Last configuration was updated at {stamp} by admin", *body[1:]]
    if vendor == "h3c":  # a save time under the first separator, new at every fetch here
        stamp = now.strftime("%H:%M:%S.%f UTC %a %b %d %Y")
        return [body[0], f"#  Last configuration was saved at {stamp}", *body[1:]]
    size = sum(len(line) + 1 for line in body)
    if vendor == "ruijie":
        stamp = now.strftime("%a %b %d %H:%M:%S.%f %Y")
        return ["Building configuration...", f"Current configuration : {size + count} bytes",
                "", "!", f"!Time: {stamp}", "!", *body]
    stamp = now.strftime("%H:%M:%S.%f UTC %a %b %d %Y")
    return ["Building configuration...", "", f"Current configuration : {size + count} bytes",
            "!", f"! Last configuration change at {stamp} by admin", "!", *body]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _serve(Path(sys.argv[2]))
    else:
        sys.exit("usage: ssh_device.py --serve DIR")
