"""The `[dr.SYSTEM]` tables: docs/dr.md's example is valid and reads as documented, and
each mistake (schema or cross-check) is reported at its own key and line, all in one run,
with no check judging a key that failed its schema."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from medark.config.loader import load_config
from medark.errors import ConfigInvalid

DOC = Path(__file__).resolve().parents[2] / "docs" / "dr.md"
EXAMPLE = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
assert EXAMPLE is not None
GOOD = EXAMPLE.group(1)
HIS_STANDBY_SITE = 'dbname=his"\npassword_file = "/etc/medark/his-db.password"\n' \
    'control = { datadir'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dr.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, needle: str, after: str = "") -> int:
    start = text.index(after) if after else 0
    return text.count("\n", 0, text.index(needle, start)) + 1


def test_the_documented_example_is_valid_and_reads_as_documented(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    his, lis = config.dr["his"], config.dr["lis"]
    assert (his.primary.kind, his.standby.site, his.feed) == ("postgres", "east", "stream")
    assert his.primary.control.unit == "postgresql@15-main.service"
    assert his.standby.control.pg_ctl == "/usr/lib/postgresql/15/bin/pg_ctl"
    assert his.max_lag == timedelta(seconds=30) and his.max_lag_bytes == 16 * 1024 * 1024
    assert his.fencing.type == "readonly" and his.drill == "0 3 1 * *"
    assert [s.name for s in his.services["east"]] == ["his-app", "his-web"]
    assert his.services["east"][0].start_timeout == timedelta(seconds=45)
    assert his.services["east"][1].start_timeout == timedelta(seconds=60)
    assert [h.type for h in his.health] == ["http", "sql"]
    assert his.client_switch is not None and his.client_switch.database == "his"
    assert his.slot_name("his") == "medark_dr_his"
    assert (lis.fencing.type, lis.fencing.command) == ("hook", "/usr/local/sbin/lis-fence")
    assert lis.slot_name("lis") is None and lis.synchronous is False
    assert lis.on_sync_loss == "degrade" and lis.max_lag == timedelta(minutes=1)


def test_a_config_without_dr_has_none(tmp_path: Path) -> None:
    plain = GOOD.split("# HIS: streaming")[0]
    assert load_config(write(tmp_path, plain)).dr == {}


def test_the_default_slot_is_derived_from_the_system(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, edit('slot = "medark_dr_his"\n', "")))
    assert config.dr["his"].slot_name("his") == "medark_dr_his"


def test_unknown_names_are_reported_at_their_line(tmp_path: Path) -> None:
    text = GOOD.replace("[dr.lis", "[dr.lab")
    text = edit('site = "east"\ndsn = "host=10.1.0.11', 'site = "west"\ndsn = "host=10.1.0.11',
                text)
    text = edit('[[dr.lab.services.east]]', '[[dr.lab.services.north]]', text)
    found = problems(tmp_path, text)
    path = tmp_path / "dr.toml"
    west = line_of(text, 'site = "west"')
    assert found == [
        f"{path}:{west}: dr.his.standby.site: unknown site 'west' (defined: east, main)",
        f"{path}:{line_of(text, '[dr.lab]')}: dr.lab: unknown system 'lab' (defined: his, lis)",
        f"{path}:{line_of(text, '[[dr.lab.services.north]]')}: dr.lab.services.north: "
        "unknown site 'north' (defined: east, main)",
    ]


def test_the_same_node_twice_and_a_kind_mismatch(tmp_path: Path) -> None:
    text = edit('dsn = "host=10.1.0.11 port=5432 user=medark dbname=his"',
                'dsn = "postgresql://medark@10.0.0.11/his"')
    text = edit('kind = "mariadb"\nsite = "east"', 'kind = "postgres"\nsite = "east"', text)
    found = problems(tmp_path, text)
    assert len(found) == 2, found
    assert found[0].endswith("dr.his.standby.dsn: the primary and the standby are the same "
                             "node (10.0.0.11:5432): the standby must be another server")
    dsn = line_of(text, 'dsn = "postgresql://')
    kind = line_of(text, 'kind = "postgres"', "[dr.lis.standby]")
    assert f":{dsn}:" in found[0]
    assert f":{kind}: dr.lis.standby.kind: the standby is postgres but the primary is " \
        "mariadb" in found[1]  # and its control is not judged by a kind that may be wrong


def test_feed_rules(tmp_path: Path) -> None:
    text = edit('feed = "stream"\nslot = "medark_dr_his"',
                'feed = "repository"\nslot = "medark_dr_his"')
    text = edit("synchronous = false ", "synchronous = true ", text)
    text = edit('[dr.lis]\nfeed = "stream"', '[dr.lis]\nfeed = "stream"\nslot = "lis"', text)
    found = problems(tmp_path, text)
    assert [f.split(": ", 2)[1] for f in found] == [
        "dr.his.feed", "dr.his.slot", "dr.his.synchronous", "dr.lis.slot"]
    assert "needs repository = NAME" in found[0]
    assert "a slot belongs to feed = \"stream\"" in found[1]
    assert "synchronous needs feed = \"stream\"" in found[2] and "archived" in found[2]
    assert "MariaDB stream feed needs no slot" in found[3]
    named = edit('feed = "repository"', 'feed = "repository"\nrepository = "nas"', text)
    found = problems(tmp_path, named)
    assert any("dr.his.repository: unknown repository 'nas' (defined: east, local)" in f
               for f in found)
    offsite = edit('repository = "nas"', 'repository = "east"', named)
    assert not any("repository" in f.split(": ", 2)[1] for f in problems(tmp_path, offsite))
    streaming = edit('[dr.lis]\nfeed = "stream"', '[dr.lis]\nrepository = "east"')
    [one] = problems(tmp_path, streaming)
    assert "dr.lis.repository: repository belongs to feed = \"repository\"" in one


@pytest.mark.parametrize(("old", "new", "key", "message", "at"), [
    ('control = { unit = "mariadb.service" }', "control = {}", "dr.lis.primary.control",
     "give exactly one of datadir (with mariadbd), unit (systemd) or start/stop/status "
     "commands; found nothing", "control = {}"),
    ('control = { unit = "mariadb.service" }',
     'control = { unit = "m.service", start = "x" }', "dr.lis.primary.control",
     "found unit and commands", 'unit = "m.service"'),
    ('control = { unit = "mariadb.service" }', 'control = { start = "a", stop = "b" }',
     "dr.lis.primary.control.status", "commands need start, stop and status",
     'start = "a"'),
    (', pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl"', "", "dr.his.standby.control.pg_ctl",
     "a postgres datadir needs pg_ctl", 'control = { datadir = "/var/lib/postgresql'),
    ('control = { unit = "postgresql@15-main.service" }',
     'control = { unit = "pg.service", pg_ctl = "/bin/pg_ctl" }',
     "dr.his.primary.control.pg_ctl", "pg_ctl goes with datadir", 'unit = "pg.service"'),
    ('dsn = "mysql://medark@10.1.0.12:3306/"', 'dsn = "mysql://medark:s3cret@10.1.0.12/"',
     "dr.lis.standby.dsn", "no password in the DSN", "s3cret"),
    ('dsn = "host=10.1.0.11 port=5432', 'dsn = "password=x host=10.1.0.11 port=5432',
     "dr.his.standby.dsn", "no password in the DSN", "password=x"),
    ('url = "http://10.1.0.20:8080/health"\n', "", "dr.his.health[0].url",
     "an http check needs url", "[[dr.his.health]]"),
    ('expect = "t"', 'expect = "t"\nexpect_status = 201', "dr.his.health[1].expect_status",
     "expect_status belongs to an http check, not sql", "expect_status = 201"),
    ('address = "10.1.0.30:7000"\n', "", "dr.lis.health[0].address", "a tcp check needs address",
     "[[dr.lis.health]]"),
    ('address = "10.1.0.30:7000"', 'address = "10.1.0.30"', "dr.lis.health[0].address",
     "invalid address '10.1.0.30': use HOST:PORT", 'address = "10.1.0.30"'),
    ('database = "his"\n', "", "dr.his.client_switch.database",
     "a pgbouncer client switch needs database", "[dr.his.client_switch]"),
    ('type = "hook"\ncommand = "/usr/local/sbin/lis-vip-move"', 'type = "pgbouncer"  # lis\n'
     'database = "lis"\nini = "/etc/pgbouncer/pgbouncer.ini"', "dr.lis.client_switch.type",
     "pgbouncer pools PostgreSQL only", 'type = "pgbouncer"  # lis'),
    ('fencing = { type = "hook", command = "/usr/local/sbin/lis-fence" }',
     'fencing = { type = "hook" }', "dr.lis.fencing.command", "a fencing hook needs command",
     'fencing = { type = "hook" }'),
    ('fencing = "readonly"', 'fencing = "shutdown"', "dr.his.fencing.type", "Input should be",
     'fencing = "shutdown"'),
    ('unit = "lis.service"', 'unit = "lis.service"\nstart = "x"',
     "dr.lis.services.east[0].unit", "give a systemd unit or start/stop commands, not both",
     'unit = "lis.service"'),
    ('drill = "0 3 1 * *"', 'drill = "continuous"', "dr.his.drill",
     "a drill cannot be continuous", 'drill = "continuous"'),
    ('drill = "0 3 1 * *"', 'drill = "now and then"', "dr.his.drill", "invalid schedule",
     'drill = "now and then"'),
    ('slot = "medark_dr_his"', 'slot = "DR-his"', "dr.his.slot", "invalid slot name",
     'slot = "DR-his"'),
    ('max_lag = "30s"', 'max_lag = "30m"', "dr.his.max_lag", "ambiguous duration",
     'max_lag = "30m"'),
    ("max_lag_bytes = 16777216", "max_lag_bytes = -1", "dr.his.max_lag_bytes",
     "greater than or equal to 0", "max_lag_bytes = -1"),
    ("synchronous = false", 'synchronous = false\non_sync_lost = "block"',
     "dr.his.on_sync_lost", "unknown key", "on_sync_lost"),
])
def test_each_mistake_names_its_key_and_line(tmp_path: Path, old: str, new: str, key: str,
                                             message: str, at: str) -> None:
    text = edit(old, new)
    [found] = problems(tmp_path, text)
    head, where, said = found.split(": ", 2)
    assert head == f"{tmp_path / 'dr.toml'}:{line_of(text, at)}"
    assert where == key and message in said


def test_services_may_run_at_either_node_site(tmp_path: Path) -> None:
    text = edit("[[dr.lis.services.east]]", '[[dr.lis.services.main]]\nname = "a"\n'
                'unit = "a.service"\n\n[[dr.lis.services.east]]')
    assert [s.unit for s in load_config(write(tmp_path, text)).dr["lis"].services["main"]] \
        == ["a.service"]


def test_services_at_a_site_without_a_node_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace('[sites.east]', '[sites.far]\nlocation = "CN-BJ"\n\n[sites.east]')
    text = edit('[[dr.lis.services.east]]', '[[dr.lis.services.far]]', text)
    [one] = problems(tmp_path, text)
    assert f":{line_of(text, '[[dr.lis.services.far]]')}: dr.lis.services.far: site 'far' " \
        "holds neither the primary nor the standby (east and main)" in one


def test_every_mistake_in_one_run_and_no_check_on_a_broken_key(tmp_path: Path) -> None:
    # a schema error (the primary's kind) must not also produce a "kind mismatch" judged
    # on a stand-in, while the cross-checks elsewhere still run in the same pass
    text = edit('kind = "postgres"\nsite = "main"', 'kind = "oracle"\nsite = "main"')
    text = edit('[dr.lis]\nfeed = "stream"', '[dr.lis]\nfeed = "repository"', text)
    text = edit('url = "/dr/medark"', 'url = "/dr/medark"\nsize = 3', text)
    found = problems(tmp_path, text)
    keys = [f.split(": ", 2)[1] for f in found]
    assert keys == ["repositories.east.size", "dr.his.primary.kind", "dr.lis.feed"], found
    assert not any("dr.his.standby" in k for k in keys)


def test_the_dr_exit_codes_are_new_and_documented() -> None:
    """Operators script around exit codes: the DR ones collide with no other class, and
    README.md and docs/dr.md list each with its number."""
    from medark import errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.MedarkError)]
    dr = [errors.StandbyNotReady, errors.LagOverLimit, errors.FencingFailed,
          errors.HealthCheckFailed, errors.SwitchRefused]
    others = {c.exit_code for c in classes if c not in dr}
    assert [c.exit_code for c in dr] == [26, 27, 28, 29, 30]
    assert not others & {c.exit_code for c in dr}
    assert len({c.code for c in classes}) == len(classes)
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    doc = DOC.read_text(encoding="utf-8")
    for cls in dr:
        assert cls.__doc__
        assert f"\n| {cls.exit_code} | `dr`: " in readme
        assert f"\n| {cls.exit_code} | `{cls.__name__}` |" in doc
