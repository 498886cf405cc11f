"""The command line itself: a mistyped command or option gets the closest name, a command
group named alone shows its actions, shell completion comes from the parser, and
`medark --help` imports none of the commands' dependencies."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MEDARK, Cli

from medark.cli import commands
from medark.cli.toplevel import build_parser

GROUPS = {
    "snapshot": ["hold", "release", "status"],
    "pg": ["backup", "wal-push", "wal-fetch", "restore", "wal-stream", "check", "status"],
    "mysql": ["backup", "binlog-stream", "restore", "status"],
    "key": ["list", "add", "remove", "passwd"],
    "plan": ["show"],
    "report": ["monthly", "quarterly"],
    "config": ["check"],
}

HEAVY = ("botocore", "boto3", "s3transfer", "cryptography", "psycopg", "sqlalchemy",
         "alembic", "pydantic", "croniter", "prometheus_client", "argon2", "jinja2",
         "matplotlib", "weasyprint", "numpy", "rich")


@pytest.mark.parametrize(("args", "expected"), [
    (["backpu"], "unknown command 'backpu'; did you mean 'backup'?"),
    (["snapshots-list"], "did you mean 'snapshots'?"),
    (["pg", "wal-pusj"], "unknown command 'pg wal-pusj'; did you mean 'pg wal-push'?"),
    (["backup", "--exlude", "x", "/tmp"],
     "unknown option '--exlude' for `medark backup`; did you mean '--exclude'?"),
    (["restore", "latest", "--taget=/tmp/x"], "did you mean '--target'?"),
    (["pg", "restore", "--target-dri", "/tmp/x"],
     "unknown option '--target-dri' for `medark pg restore`; did you mean '--target-dir'?"),
    (["--rpo", "/x", "snapshots"], "unknown option '--rpo' for `medark`; did you mean '--repo'?"),
    (["snapshot", "hodl", "abc"], "invalid choice: 'hodl'; did you mean 'hold'?"),
    (["dump", "-a", "tarr", "latest", "/x"], "did you mean 'tar'?"),
])
def test_a_mistyped_name_gets_the_closest_one(cli: Cli, args: list[str], expected: str) -> None:
    result = cli(*args, check=False)
    assert result.returncode == 2  # README: 2 is wrong usage
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert expected in result.stderr
    assert result.stdout == ""


def test_an_option_nothing_resembles_points_to_the_help(cli: Cli) -> None:
    result = cli("backup", "--zzzz", "/tmp", check=False)
    assert result.returncode == 2
    assert result.stderr == ("medark: unknown option '--zzzz' for `medark backup` "
                             "(see `medark backup --help`)\n")


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_command_group_alone_shows_its_actions(cli: Cli, group: str) -> None:
    result = cli(group, check=False)
    assert result.returncode == 2, result.stderr  # as bare `medark`: help, usage code
    assert result.stderr == ""
    assert result.stdout.startswith(f"usage: medark {group} ")
    for action in GROUPS[group]:
        assert action in result.stdout
    doc = json.loads(cli("--json", group, check=False).stdout)
    assert doc["code"] == "usage" and doc["exit_code"] == 2
    assert doc["message"] == f"`medark {group}` needs one of: {', '.join(GROUPS[group])}"


def test_a_group_with_its_action_still_names_what_is_missing(cli: Cli) -> None:
    result = cli("snapshot", "hold", check=False)
    assert result.returncode == 2
    assert "takes exactly one snapshot id" in result.stderr
    assert "usage:" not in result.stdout


def _complete(script: str, *words: str) -> list[str]:
    """What bash offers for the last of `words` on a `medark` command line."""
    line = " ".join(words)
    program = (f'source "$1"; COMP_WORDS=({" ".join(map(_quote, words))}); '
               f"COMP_CWORD={len(words) - 1}; COMP_LINE={_quote(line)}; "
               f"COMP_POINT={len(line)}; _shtab_medark; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", program, "bash", script], capture_output=True,
                          text=True, check=True)
    return done.stdout.split()


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def test_bash_completion_offers_commands_actions_options_and_paths(
        cli: Cli, tmp_path: Path) -> None:
    script = tmp_path / "medark.bash"
    script.write_text(cli("completion", "bash", password=None).stdout)
    assert _complete(str(script), "medark", "ba") == ["backup"]
    assert set(_complete(str(script), "medark", "")) == set(commands.NAMES)
    assert _complete(str(script), "medark", "snapshot", "") == GROUPS["snapshot"]
    assert _complete(str(script), "medark", "pg", "wal-p") == ["wal-push"]
    assert _complete(str(script), "medark", "backup", "--exc") == ["--exclude",
                                                                   "--exclude-file"]
    (tmp_path / "restore-here").mkdir()
    (tmp_path / "a-file").write_text("x")
    offered = _complete(str(script), "medark", "restore", "latest", "--target",
                        f"{tmp_path}/")
    assert f"{tmp_path}/restore-here" in offered
    assert f"{tmp_path}/a-file" not in offered  # --target is a directory
    assert f"{tmp_path}/a-file" in _complete(str(script), "medark", "backup", f"{tmp_path}/a")


def test_zsh_completion_is_a_compdef_for_every_command(cli: Cli) -> None:
    script = cli("completion", "zsh", password=None).stdout
    assert script.startswith("#compdef medark")
    for name in commands.NAMES:
        assert re.search(rf"^\s*{re.escape(name)}:'", script, re.M), name
    assert "--exclude-file" in script
    assert cli("completion", "fish", check=False, password=None).returncode == 2


PROBE = """
import json, sys
from medark.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:  # --help
    pass
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def _imported(*args: str) -> set[str]:
    """The modules `medark ARGS` has imported when it is done (cli/main.py's own main,
    in a fresh interpreter; -X importtime would miss the command modules, which
    importlib loads)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, check=True)
    return set(json.loads(done.stderr.splitlines()[-1]))


def test_help_imports_no_command_and_none_of_their_dependencies() -> None:
    imported = _imported("--help")
    assert {"medark.cli.main", "argparse"} <= imported
    assert not [m for m in imported if m.split(".")[0] in HEAVY]
    assert not [m for m in imported if m.startswith("medark.cli.commands.")]
    assert not [m for m in imported if m.startswith(("medark.repo", "medark.engine",
                                                     "medark.service", "medark.catalog"))]


AT_HELP_NEVER = ("sqlalchemy", "pydantic", "croniter", "botocore", "psycopg", "cryptography",
                 "matplotlib", "weasyprint")
"""What a command's parser must not load: its help is read on a database host or by a
person at a prompt, and these take 50 to 500 ms (the catalog alone about 400)."""


@pytest.mark.parametrize("name", list(commands.SUMMARIES))
def test_a_commands_help_imports_none_of_its_heavy_dependencies(name: str) -> None:
    imported = _imported(name, "--help")
    assert f"medark.cli.commands.{name}" in imported  # its own module gave the help
    assert sorted({m.split(".")[0] for m in imported} & set(AT_HELP_NEVER)) == []
    assert "medark.cli.commands.backup" not in imported or name == "backup"


def test_a_command_that_runs_loads_what_it_needs(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above are not vacuous: `jobs` run against a catalog imports SQLAlchemy,
    `init` the cipher library."""
    monkeypatch.setenv("MEDARK_PASSWORD", "a password")
    catalog = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    assert {"sqlalchemy", "medark.cli.commands.jobs"} <= _imported("jobs", "--catalog",
                                                                   catalog)
    assert "cryptography" in _imported("init", "--repo", str(tmp_path / "repo"))


def _one_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A repository holding one snapshot of a one-file tree (no configuration file)."""
    monkeypatch.setenv("MEDARK_PASSWORD", "a password")
    monkeypatch.setenv("MEDARK_CONFIG", str(tmp_path / "absent.toml"))
    repo = str(tmp_path / "repo")
    subprocess.run([MEDARK, "init", "-q", "--repo", repo], check=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_text("a")
    subprocess.run([MEDARK, "backup", "-q", "--repo", repo, str(data)], check=True)
    monkeypatch.delenv("MEDARK_CONFIG")
    return repo, data


def test_forget_of_file_snapshots_loads_no_database_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """forget asks whether any snapshot is a consistency group's point: answering it
    without group_backup's PostgreSQL and MariaDB code halves the command's start."""
    repo, _data = _one_snapshot(tmp_path, monkeypatch)
    imported = _imported("forget", "--keep-last", "1", "--repo", repo, "-q")
    assert "medark.engine.group_retention" in imported  # the question was asked
    assert sorted({m.split(".")[0] for m in imported} & {"psycopg", "pymysql"}) == []
    assert "medark.engine.group_backup" not in imported
    # nor the MariaDB backup code a point's base is found with (only a MariaDB point's)
    assert {"medark.engine.group_mariadb", "medark.engine.backup_stdin"}.isdisjoint(imported)


def test_a_listing_of_snapshots_loads_no_tree_decoder_thread_pool_or_process_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`snapshots` reads no tree and starts no thread or process: msgspec,
    concurrent.futures, subprocess and socket are imported by the commands that use them
    (15, 4, 2 and 1 ms of every other start); its parser is that command's alone."""
    repo, _data = _one_snapshot(tmp_path, monkeypatch)
    imported = _imported("snapshots", "--repo", repo, "-q")
    assert "medark.snapshot.store" in imported  # the snapshots were read
    assert sorted(imported & {"msgspec", "concurrent.futures", "subprocess", "socket"}) == []
    assert [m for m in imported if m.startswith("medark.cli.commands.")] == [
        "medark.cli.commands.snapshots"]
    assert "msgspec" in _imported("ls", "latest", "--repo", repo, "-q")  # a tree's reader


def test_a_certain_command_gets_its_parser_alone_and_anything_else_every_name() -> None:
    """The command a line runs, when certain, is parsed by its parser alone; a line whose
    command is not certain lists every command, for --help and a mistyped name."""
    def choices(*argv: str) -> list[str]:
        parser = build_parser(argv)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return sorted(sub.choices)

    every = sorted(commands.NAMES)
    assert choices("-r", "backup", "--json", "snapshots", "ls") == ["snapshots"]
    assert choices("--repo=/r", "ls", "latest", "/backup") == ["ls"]
    for line in (["--help"], ["--version"], [], ["snapshotz"], ["--rpo", "x", "ls"],
                 ["--retry-lock", "zz", "ls"], ["--repo"]):
        assert choices(*line) == every, line

def test_a_read_without_a_configuration_loads_no_configuration_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore asks whether a catalog is configured (to audit the read): with no
    configuration file that answer costs no pydantic or croniter (180 ms of every
    restore, ls and dump); with one, the configuration is read and its catalog used."""
    monkeypatch.delenv("MEDARK_CATALOG", raising=False)
    repo, data = _one_snapshot(tmp_path, monkeypatch)
    imported = _imported("restore", "latest", "--repo", repo, "--target",
                         str(tmp_path / "out"), "-q")
    assert (tmp_path / "out" / str(data).lstrip("/") / "a").read_text() == "a"
    assert "medark.service.access_audit" in imported  # the question was asked
    assert sorted({m.split(".")[0] for m in imported} & {"pydantic", "croniter"}) == []
    # with a file the file is read (this one is refused as incomplete; a complete
    # one's catalog records the read: test_access_audit_cli)
    config = tmp_path / "medark.toml"
    config.write_text(f'[catalog]\nurl = "sqlite:///{tmp_path / "catalog.sqlite"}"\n')
    monkeypatch.setenv("MEDARK_CONFIG", str(config))
    imported = _imported("restore", "latest", "--repo", repo, "--target",
                         str(tmp_path / "out2"), "-q")
    assert {"pydantic", "medark.service.plans"} <= imported
    assert not (tmp_path / "out2").exists()


def test_commands_that_read_the_catalog_load_no_runner_and_no_database_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`jobs`, `alerts` and `audit verify` read tables: they load neither the plan runner
    nor the restore test with its PostgreSQL and MariaDB clients, nor the metrics server
    (0.6 -> 0.45 CPU s for `jobs`); on a SQLite catalog, no psycopg; given --catalog,
    `audit` reads no configuration (pydantic)."""
    monkeypatch.delenv("MEDARK_CATALOG", raising=False)
    catalog = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    never = {"medark.service.jobs", "medark.scheduler.runner", "medark.scheduler.restore_test",
             "prometheus_client", "psycopg"}
    for argv in (["jobs", "--catalog", catalog], ["alerts", "--catalog", catalog],
                 ["audit", "verify", "--catalog", catalog]):
        imported = _imported(*argv)
        assert "medark.catalog.store" in imported, argv  # the catalog was read
        assert sorted(never & imported) == [], argv
    assert "pydantic" not in _imported("audit", "verify", "--catalog", catalog)


def test_help_lists_every_command_with_its_own_help_line() -> None:
    """`--help` takes each line from commands.SUMMARIES, without importing the module:
    it must say what the module's COMMAND says."""
    assert list(commands.SUMMARIES) == commands.NAMES
    for name in commands.NAMES:
        assert commands.load(name).help == commands.SUMMARIES[name], name
    listing = subprocess.run([MEDARK, "--help"], capture_output=True, text=True,
                             check=True).stdout
    for name in commands.NAMES:
        assert re.search(rf"^    {re.escape(name)}\s", listing, re.M), name
