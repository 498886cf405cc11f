"""A consistency group on MariaDB in the configuration (docs/pacs.md, "A group on
MariaDB"): it loads, the daemon backs it up as one `group backup --mariadb` step with the
DSN in MEDARK_MYSQL_DSN (as its mysql backup step), and two databases are refused."""

from __future__ import annotations

from pathlib import Path

from pacs_config import HEAD, load, problems

from medark.config.groups import Group, groups_of
from medark.scheduler.runner import backup_steps

MARIADB = """
[[systems.pacs.sources]]
type = "mariadb"
dsn = "mysql://medark@pacs-db:3306/pacsdb"
group = "pacs"
"""

FILES = """
[[systems.pacs.sources]]
type = "files"
paths = ["/data/pacs"]
group = "pacs"
pacs = "sql"
index_query = "SELECT path, size FROM images"
"""


def test_a_mariadb_group_loads_and_is_one_daemon_step(tmp_path: Path) -> None:
    config = load(tmp_path, HEAD + MARIADB + FILES)
    assert groups_of(config.systems["pacs"].sources) == [Group("pacs", 0, 1)]
    steps = backup_steps(config, "pacs", medark=["medark"])
    assert [s.source for s in steps] == ["group pacs"]
    step = steps[0]
    assert step.argv[:5] == ["medark", "--json", "--retry-lock", "30m", "group"]
    assert "--mariadb" in step.argv and "--sqlite" not in step.argv
    assert step.argv[step.argv.index("--root") + 1] == "/data/pacs"
    assert step.env["MEDARK_MYSQL_DSN"] == "mysql://medark@pacs-db:3306/pacsdb"
    assert "MEDARK_PG_DSN" not in step.env


def test_a_group_with_two_databases_is_refused(tmp_path: Path) -> None:
    postgres = MARIADB.replace('type = "mariadb"', 'type = "postgres"').replace(
        "mysql://medark@pacs-db:3306/pacsdb", "host=db dbname=pacs")
    found = problems(tmp_path, HEAD + MARIADB + postgres + FILES)
    assert any("one postgres source (has 1) or one sqlite source (has 0) or one mariadb "
               "source (has 1)" in p for p in found), found
