"""`medark daemon` anchors the audit trail (`[audit] anchor_repository`, `anchor_every`)
as a subprocess, on SQLite and the running PostgreSQL: the first anchor at start, a
new one once the trail has new records and none while it is idle; `medark audit verify
--repo` passes on its anchors and names a history later rewritten with the signing key;
an anchor that fails (a repository not initialised) raises `audit_anchor_failed`, which
the next anchor that succeeds resolves."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_urls import KINDS, catalog_urls
from conftest import MEDARK, PASSWORD, Cli
from sqlalchemy import create_engine, select, text, update

from medark.catalog import audit_trail
from medark.catalog.audit_trail import AuditEntry, append, records
from medark.catalog.store import Catalog

CONFIG = """\
[catalog]
url = "{catalog}"

[audit]
anchor_repository = "{anchor}"
anchor_every = "1s"

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[repositories.worm]
site = "main"
url = "{worm}"
password_file = "{password_file}"

[systems.his]
owner = "IT"

[[systems.his.sources]]
type = "files"
paths = ["{data}"]

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
"""
BROKEN = 31


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path, cli: Cli,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    key = tmp_path / "audit.key"
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(key))
    cli.env["MEDARK_AUDIT_KEY_FILE"] = str(key)
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_anchor")


def _config(cli: Cli, tmp_path: Path, url: str, anchor: str) -> Path:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "a.txt").write_text("x")
    config = tmp_path / f"medark-{anchor}.toml"
    config.write_text(CONFIG.format(catalog=url, anchor=anchor, repo=cli.repo,
                                    worm=tmp_path / "worm", password_file=password_file,
                                    data=tmp_path / "data"), encoding="utf-8")
    return config


def _append(url: str, *actions: str) -> None:
    catalog = Catalog(url)
    try:
        for action in actions:
            append(catalog, AuditEntry("sec.admin", "10.0.0.5", action, "user:li.na"))
    finally:
        catalog.close()


def _daemon(cli: Cli, config: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    return subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config), "--poll",
                             "0.1", "--grace", "20"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stop(daemon: subprocess.Popen[str]) -> str:
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err, err
    return out


def _until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _verify(cli: Cli, url: str, repo: Path | None) -> tuple[int, list[str]]:
    extra = ["--repo", str(repo)] if repo is not None else []
    result = cli("audit", "verify", "--catalog", url, *extra, check=False)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout.splitlines()


def _anchored(cli: Cli, url: str, repo: Path) -> tuple[int, int]:
    """(anchors in the repository, the newest anchored record) per `audit verify`."""
    code, lines = _verify(cli, url, repo)
    assert code == 0, lines
    found = re.search(r"(\d+) anchors up to record (\d+): intact$", lines[-1])
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _alerts(cli: Cli, url: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = cli("alerts", "--json", "--catalog", url,
                                       password=None).json()
    return result


def test_the_daemon_anchors_the_trail(cli: Cli, tmp_path: Path, url: str) -> None:
    cli("init")
    _append(url, "user.create", "user.update", "token.create")
    config = _config(cli, tmp_path, url, "local")
    daemon = _daemon(cli, config)
    try:
        _until(lambda: _anchored(cli, url, cli.repo)[0] >= 1, 60, "the first anchor")
        assert _anchored(cli, url, cli.repo) == (1, 3)  # record 4 notes the anchor
        _append(url, "user.disable", "token.revoke")  # records 5, 6
        _until(lambda: _anchored(cli, url, cli.repo) == (2, 6), 60, "the second anchor")
        time.sleep(3)  # three intervals of an idle trail (only the anchor's note is new)
        assert _anchored(cli, url, cli.repo) == (2, 6)
    finally:
        out = _stop(daemon)
    assert '"kind": "anchor"' in out and "nothing new since the anchor of record 6" in out
    jobs = cli("jobs", "--json", "--catalog", url, "--latest", "100", password=None).json()
    anchors = [j for j in jobs if (j["plan"], j["kind"]) == ("audit", "anchor")]
    # each anchored (exit 0); one that found the repository locked past its wait would
    # say so in its step (exit 11, skipped)
    assert [(j["status"], [s["exit_code"] for s in j["details"]["steps"]])
            for j in anchors] == [("succeeded", [0])] * 2, anchors
    assert not _alerts(cli, url)

    # the database administrator holding the key rewrites record 2 and everything after
    key = bytes.fromhex((tmp_path / "audit.key").read_text().strip())
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as c:
        for verb in ("update", "delete"):
            suffix = " ON audit_trail" if engine.dialect.name == "postgresql" else ""
            c.execute(text(f"DROP TRIGGER audit_trail_no_{verb}{suffix}"))
        rows = list(c.execute(select(records).order_by(records.c.seq)))
        prev = rows[0].hash
        for row in rows[1:]:
            stored = audit_trail.stored_record(row)
            actor = "nobody" if row.seq == 2 else stored.actor
            fields = audit_trail.hashed_fields(
                row.seq, audit_trail.format_at(stored.at), actor, stored.source,
                stored.action, stored.target, stored.result, stored.institution,
                stored.detail, stored.hash_alg, stored.key_id, prev)
            digest = audit_trail.digest(stored.hash_alg, audit_trail.canonical(fields))
            c.execute(update(records).where(records.c.seq == row.seq).values(
                actor=actor, prev_hash=prev, hash=digest,
                signature=audit_trail.mac(stored.hash_alg, key, digest.encode())))
            prev = digest
        c.execute(update(audit_trail.head).values(hash=prev))
    engine.dispose()
    code, lines = _verify(cli, url, None)
    assert code == 0, lines  # the chain alone cannot tell
    code, lines = _verify(cli, url, cli.repo)
    assert code == BROKEN, lines
    found = [line for line in lines if line.startswith("record ")]
    assert found and all("anchor: differs from the anchor of" in line for line in found)
    assert found[0].startswith("record 3: ") and "up to record 3 was rewritten" in found[0]


def test_a_failed_anchor_raises_an_alert(cli: Cli, tmp_path: Path, url: str) -> None:
    cli("init")
    _append(url, "user.create")
    config = _config(cli, tmp_path, url, "worm")  # not initialised yet
    daemon = _daemon(cli, config)
    try:
        alert = _until(lambda: [a for a in _alerts(cli, url)
                                if a["key"] == "audit_anchor_failed:worm"], 60,
                       "the anchor alert")[0]
        assert alert["resolved_at"] is None and alert["kind"] == "audit_anchor_failed"
        assert alert["plan"] == "worm"
        assert "审计日志锚定到 worm 失败" in alert["summary"], alert
        cli("-r", tmp_path / "worm", "init")
        _until(lambda: [a for a in _alerts(cli, url)
                        if a["key"] == "audit_anchor_failed:worm" and a["resolved_at"]], 60,
               "the alert resolved")
    finally:
        _stop(daemon)
    assert _anchored(cli, url, tmp_path / "worm")[0] >= 1
    jobs = cli("jobs", "--json", "--catalog", url, "--latest", "200", password=None).json()
    statuses = {j["status"] for j in jobs if (j["plan"], j["kind"]) == ("audit", "anchor")}
    assert statuses == {"failed", "succeeded"}, statuses
