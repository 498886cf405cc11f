"""`medark version` and `--version` need no repository and agree with the package."""

from __future__ import annotations

from conftest import Cli

from medark import __version__


def test_version_as_text_and_json(cli: Cli) -> None:
    assert cli("--version", password=None).stdout.strip() == f"medark {__version__}"
    text = cli("version", password=None).stdout
    assert text.startswith(f"medark {__version__} running on Python 3.")
    doc = cli("--json", "version", password=None).json()
    assert doc["message_type"] == "version" and doc["version"] == __version__
    assert doc["os"] and doc["arch"]
