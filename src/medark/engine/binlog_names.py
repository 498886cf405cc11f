"""Where archived binlogs live in a repository: the names the archive, forget and copy
share, apart from engine/mysql_binlog so that a forget of file snapshots, which lists
them, imports no MySQL code."""

from __future__ import annotations

BINLOG_PREFIX = "binlog/"
PARTIAL = ".partial-"
"""Between a binlog file's name and the version of a copy taken while it still grew."""
