"""Whether a server's WAL reaches a Medark repository, from what the server reports: the
rule that decides whether `pg backup` streams its own WAL."""

from __future__ import annotations

import pytest

from medark.sources.postgres.wal_capture import ArchiveSetup

PUSH = "medark --repo /backup/his --password-file /etc/medark/his.pw pg wal-push %p"


@pytest.mark.parametrize(("setup", "reaches"), [
    (ArchiveSetup("off", "(disabled)", streaming=False), False),
    (ArchiveSetup("on", "", streaming=False), False),
    (ArchiveSetup("on", "cp %p /mnt/archive/%f", streaming=False), False),
    (ArchiveSetup("on", PUSH, streaming=False), True),
    (ArchiveSetup("always", PUSH, streaming=False), True),
    (ArchiveSetup("on", None, streaming=False), True),  # unreadable: keep the check
    (ArchiveSetup("off", "(disabled)", streaming=True), True),  # pg wal-stream attached
])
def test_reaches_medark(setup: ArchiveSetup, reaches: bool) -> None:
    assert setup.reaches_medark() is reaches


def test_describe_names_the_reason() -> None:
    assert ArchiveSetup("off", "", False).describe() == "archive_mode is off"
    assert ArchiveSetup("on", "", False).describe() == "archive_command is empty"
    assert "does not run `medark pg wal-push`" in ArchiveSetup(
        "on", "cp %p /x", False).describe()
