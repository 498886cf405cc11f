"""The environment variables Medark reads, in one place (the CLI reference lists these)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    help: str

    def get(self) -> str | None:
        value = os.environ.get(self.name)
        return value if value else None


REPO = EnvVar("MEDARK_REPO", "repository location (same as --repo)")
PASSWORD = EnvVar("MEDARK_PASSWORD", "repository password")
PASSWORD_FILE = EnvVar("MEDARK_PASSWORD_FILE", "file whose first line is the password")
PASSWORD_COMMAND = EnvVar("MEDARK_PASSWORD_COMMAND", "command that prints the password")
NEW_PASSWORD = EnvVar("MEDARK_NEW_PASSWORD", "new password for `key add/passwd`")
NEW_PASSWORD_FILE = EnvVar("MEDARK_NEW_PASSWORD_FILE", "file with the new password")
FROM_REPO = EnvVar("MEDARK_FROM_REPO", "source repository of `copy` (same as --from-repo)")
FROM_PASSWORD = EnvVar("MEDARK_FROM_PASSWORD", "password of the source repository of `copy`")
FROM_PASSWORD_FILE = EnvVar("MEDARK_FROM_PASSWORD_FILE",
                            "file with the source repository's password")
FROM_PASSWORD_COMMAND = EnvVar("MEDARK_FROM_PASSWORD_COMMAND",
                               "command that prints the source repository's password")
CONFIG = EnvVar("MEDARK_CONFIG",
                 "protection configuration file (default /etc/medark/medark.toml)")
DEFAULT_CONFIG = Path("/etc/medark/medark.toml")


def config_path(given: str | None) -> Path:
    """--config, else MEDARK_CONFIG, else /etc/medark/medark.toml (here, not beside the
    loader: a command that only asks whether there is a configuration imports no pydantic)."""
    return Path(given or CONFIG.get() or DEFAULT_CONFIG)


CATALOG = EnvVar("MEDARK_CATALOG",
                  "job catalog: sqlite:///PATH or postgresql://… (default: the config's)")
CACHE_DIR = EnvVar("MEDARK_CACHE_DIR", "local cache directory (default ~/.cache/medark)")
CACERT = EnvVar("MEDARK_CACERT", "CA certificate (PEM) trusted for rest:https:// servers "
                "(same as --cacert; default: the system's CAs)")

PG_DSN = EnvVar("MEDARK_PG_DSN", "PostgreSQL connection string for `pg backup`")
COMMAND = EnvVar("MEDARK_COMMAND",
                 "how the database's OS user runs medark (restore_command of `pg restore`)")

MYSQL_DSN = EnvVar("MEDARK_MYSQL_DSN",
                   "MariaDB/MySQL connection for `mysql backup` and `mysql binlog-stream`")

ANOMALY_MIN_SHARE = EnvVar("MEDARK_ANOMALY_MIN_SHARE",
                           "ransomware detection: share of files a signal must reach "
                           "(default 10%; same as `backup --anomaly-min-share`)")
ANOMALY_FACTOR = EnvVar("MEDARK_ANOMALY_FACTOR",
                        "ransomware detection: multiple of the source's baseline (default 5)")
ANOMALY_MIN_FILES = EnvVar("MEDARK_ANOMALY_MIN_FILES",
                           "ransomware detection: minimum number of files (default 10)")
ANOMALY_HISTORY = EnvVar("MEDARK_ANOMALY_HISTORY",
                         "ransomware detection: snapshots in the baseline (default 10)")
ANOMALY_DELETION_SHARE = EnvVar("MEDARK_ANOMALY_DELETION_SHARE",
                                "ransomware detection: share of files a mass deletion must "
                                "reach (default 30%)")
ANOMALY = [ANOMALY_MIN_SHARE, ANOMALY_FACTOR, ANOMALY_MIN_FILES, ANOMALY_HISTORY,
           ANOMALY_DELETION_SHARE]

KDF_N = EnvVar("MEDARK_KDF_N",
               "scrypt cost of new keys: a power of two from 2^15 (default) to 2^20")
INSECURE_TEST_KDF = EnvVar("MEDARK_INSECURE_TEST_KDF",
                           "test suites only: its exact phrase lets MEDARK_KDF_N go below "
                           "2^15 and makes the server's new password hashes cheap "
                           "(docs/operations.md); never set on a backup host")

ALL = [REPO, PASSWORD, PASSWORD_FILE, PASSWORD_COMMAND, NEW_PASSWORD, NEW_PASSWORD_FILE,
       FROM_REPO, FROM_PASSWORD, FROM_PASSWORD_FILE, FROM_PASSWORD_COMMAND, CONFIG,
       CATALOG, CACHE_DIR, CACERT,
       PG_DSN, COMMAND, MYSQL_DSN, *ANOMALY, KDF_N, INSECURE_TEST_KDF]
