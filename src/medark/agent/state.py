"""The agent's state directory: `agent.json` (the server, the agent's name and its
credential; 0600 in a 0700 directory) and `uploaded.json` (how far the offline queue has
been reported). Both written whole or not at all (temp file, fsync, rename)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medark.errors import UsageError
from medark.util.files import atomic_write
from medark.util.secret_file import write_secret_file

DEFAULT_DIR = "/var/lib/medark/agent"
STATE_FILE = "agent.json"
MARK_FILE = "uploaded.json"


@dataclass(frozen=True)
class AgentState:
    server: str
    """The server's API base URL (…/api)."""
    name: str
    institution: str
    credential: str
    cacert: str | None = None
    """The CA certificate (PEM) the server's certificate is verified against; None: the
    system's trust store."""

    def __repr__(self) -> str:  # never the credential
        return f"AgentState({self.institution}/{self.name} at {self.server})"


def state_dir(given: str | None) -> Path:
    return Path(given or DEFAULT_DIR).absolute()


def prepare_dir(directory: Path) -> None:
    """The state directory, made 0700 (and kept so) for the credential inside."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise UsageError(f"state directory {directory}: {exc.strerror}") from None


def save(directory: Path, state: AgentState) -> None:
    prepare_dir(directory)
    write_secret_file(str(directory / STATE_FILE),
                      (json.dumps(asdict(state), indent=2) + "\n").encode())


def load(directory: Path) -> AgentState:
    path = directory / STATE_FILE
    try:
        doc = json.loads(path.read_text())
        return AgentState(**{k: doc.get(k) for k in ("server", "name", "institution",
                                                     "credential", "cacert")})
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: enrol the agent first (medark agent "
                         "enroll --server URL --token TOKEN)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{path} cannot be read ({type(exc).__name__}): enrol the agent "
                         "again") from None


@dataclass
class Mark:
    """How far the local catalog's jobs have been reported: every job up to `last_id`
    but those `held` (still running when passed), and `skip`: jobs of the server's own
    requests, reported as those jobs' results instead."""

    last_id: int = 0
    held: list[int] = field(default_factory=list)
    skip: list[int] = field(default_factory=list)


def load_mark(directory: Path) -> Mark:
    try:
        doc: dict[str, Any] = json.loads((directory / MARK_FILE).read_text())
        return Mark(int(doc.get("last_id", 0)), [int(i) for i in doc.get("held", [])],
                    [int(i) for i in doc.get("skip", [])])
    except FileNotFoundError:
        return Mark()
    except (OSError, ValueError, TypeError, AttributeError):
        raise UsageError(f"{directory / MARK_FILE} cannot be read: remove it to report "
                         "the local job history again (the server keeps each job "
                         "once)") from None


def save_mark(directory: Path, mark: Mark) -> None:
    atomic_write(directory / MARK_FILE, (json.dumps(asdict(mark)) + "\n").encode())
