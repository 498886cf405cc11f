"""The management server opens an institution's repository only with a password file in
its own directory: a configuration (written by a hospital's administrator) whose
password_command would run on the center's server, or whose password_file points
elsewhere on it, is refused before anything is run or read."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_server_grants_cli import _config

from medark.server.snapshots import RepositoryUnavailable, check_password_sources
from medark.service.plans import load_plans_text


def _document(tmp_path: Path, password_line: str) -> str:
    text = _config(tmp_path / "repo", tmp_path / "unused")
    return text.replace(f'password_file = "{tmp_path / "unused"}"', password_line)


def test_a_password_file_in_the_servers_directory_is_accepted(tmp_path: Path) -> None:
    inside = tmp_path / "passwords" / "b.pass"
    config = load_plans_text(_document(tmp_path, f'password_file = "{inside}"'))
    check_password_sources(config, "pacs", tmp_path / "passwords")


@pytest.mark.parametrize("line, said", [
    ('password_command = "touch /tmp/medark-server-ran-it"', "never runs"),
    ('password_file = "/etc/hostname"', "only from files in"),
    ('password_file = "{tmp}/passwords/../elsewhere.pass"', "only from files in"),
])
def test_other_password_sources_are_refused(tmp_path: Path, line: str, said: str) -> None:
    config = load_plans_text(_document(tmp_path, line.format(tmp=tmp_path)))
    with pytest.raises(RepositoryUnavailable, match=said):
        check_password_sources(config, "pacs", tmp_path / "passwords")
    assert not Path("/tmp/medark-server-ran-it").exists()
