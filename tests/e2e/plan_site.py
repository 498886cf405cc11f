"""The site most plan tests share: a catalog, one site, one local repository opened by a
password file; each test adds its systems and plans."""

from __future__ import annotations

from pathlib import Path

from conftest import PASSWORD, Cli

SITE = """\
[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

"""


def write_plan_config(cli: Cli, tmp_path: Path, body: str, **values: object) -> Path:
    """A password file, the initialized repository, and medark.toml: SITE and `body`
    formatted with state, repo, password_file and `values`."""
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    config = tmp_path / "medark.toml"
    config.write_text((SITE + body).format(state=tmp_path / "state", repo=cli.repo,
                                           password_file=password_file, **values),
                      encoding="utf-8")
    return config
