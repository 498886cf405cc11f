"""A `medark server` for the tests: initialised on a catalog, started as a subprocess on
a free port, and clients that sign in the way a browser does (session cookie plus the
X-CSRF-Token header)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from catalog_urls import KINDS, catalog_urls
from dr_site import dr_nodes
from medark_command import MEDARK, PASSWORD, TEST_KDF

from medark.catalog.audit_trail import read_records
from medark.catalog.store import Catalog

NEW_PASSWORD = "Changed-at-first-login-{}"
"""Each user's own password after the first login (the user name filled in reversed,
so the policy's "not the user name" holds)."""


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEDARK_PASSWORD", "MEDARK_CATALOG"))}
    env.update(TEST_KDF)
    env["MEDARK_CACHE_DIR"] = str(tmp / "cache")
    env["MEDARK_AUDIT_KEY_FILE"] = str(tmp / "audit.key")
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MEDARK, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def init(env: dict[str, str], catalog: str) -> dict[str, str]:
    """`medark server init`; {user: one-time password} from its output."""
    done = run(env, "server", "init", "--catalog", catalog)
    assert done.returncode == 0, done.stderr
    found = dict(re.findall(r"^\s+(\w+)\s+\w+\s+(\S+)$", done.stdout, re.M))
    assert set(found) == {"sysadmin", "secadmin", "auditadmin"}, done.stdout
    return found


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    verify: Any = True
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client closed when the server stops."""
        made = httpx.Client(base_url=self.url, timeout=30, verify=self.verify, **kwargs)
        self.clients.append(made)
        return made

    def stop(self) -> str:
        """SIGTERM; the server exits 0 with no traceback. Its standard error."""
        for made in self.clients:
            made.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        _out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err, err
        return err


def start(env: dict[str, str], catalog: str, *args: str, listen: str = "127.0.0.1:0",
          verify: Any = True) -> Server:
    """`medark server` (the catalog in MEDARK_CATALOG, as a URL with a password would
    be given); returns once it prints where it listens."""
    proc = subprocess.Popen([MEDARK, "server", "--listen", listen, *args],
                            env={**env, "MEDARK_CATALOG": catalog}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    match = re.search(r"management server at (\S+)/api ", banner)
    if not match:
        proc.kill()
        raise AssertionError(f"no banner: {banner!r} {proc.communicate(timeout=30)}")
    return Server(proc, match.group(1), verify)


def code_of(response: httpx.Response) -> str:
    """The error's code; the body is exactly {"error": {"code", "message"}}, and a 422's
    may list its `problems` too, each a field and what is wrong with it."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    keys = {"code", "message", "problems"} if response.status_code == 422 else {
        "code", "message"}
    assert {"code", "message"} <= set(error) <= keys, body
    for problem in error.get("problems", []):
        assert set(problem) == {"field", "message"}, body
    return str(error["code"])


@dataclass
class User:
    """A signed-in user: its client carries the session cookie and the CSRF header."""

    name: str
    password: str
    client: httpx.Client
    totp: pyotp.TOTP | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def institutions(self, *names: str) -> None:
        """New institutions (POST /api/institutions), each answered 201."""
        for name in names:
            made = self.call("POST", "/api/institutions", json={"name": name})
            assert made.status_code == 201, made.text


def login(server: Server, name: str, password: str, totp: str | None = None
          ) -> tuple[httpx.Client, httpx.Response]:
    client = server.client()
    body: dict[str, Any] = {"username": name, "password": password}
    if totp is not None:
        body["totp"] = totp
    response = client.post("/api/login", json=body)
    if response.status_code == 200:
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client, response


def next_code(totp: pyotp.TOTP) -> str:
    """The code of the next time step: accepted (clock skew) and newer than any the
    user spent in this step, so a test need not wait 30 s between two logins."""
    return totp.at(time.time() + 30)


def first_login(server: Server, name: str, one_time: str) -> User:
    """Sign in with the one-time password, change it, and for an administrator enrol
    and confirm the TOTP second factor: the user ready to work."""
    client, response = login(server, name, one_time)
    assert response.status_code == 200, response.text
    me = response.json()["user"]
    assert me["password_change_required"] is True
    password = NEW_PASSWORD.format(name[::-1])
    changed = client.post("/api/me/password", json={"current_password": one_time,
                                                    "new_password": password})
    assert changed.status_code == 200, changed.text
    user = User(name, password, client)
    if me["totp_enrolment_required"]:
        uri = client.post("/api/me/totp").json()["otpauth_uri"]
        user.totp = pyotp.parse_uri(uri)
        assert isinstance(user.totp, pyotp.TOTP)
        confirmed = client.post("/api/me/totp/confirm", json={"code": user.totp.now()})
        assert confirmed.status_code == 200, confirmed.text
    return user

LOCKOUT_AFTER = 3
LOCKOUT_SECONDS = 3


@dataclass
class Site:
    env: dict[str, str]
    catalog: str
    server: Server
    passwords: dict[str, str]
    """The one-time passwords `server init` printed."""
    tmp: Path
    ready: dict[str, User] = field(default_factory=dict)

    def user(self, name: str) -> User:
        """An administrator from init, signed in and past its first login (once)."""
        if name not in self.ready:
            self.ready[name] = first_login(self.server, name, self.passwords[name])
        return self.ready[name]

    def new_user(self, name: str, roles: list[str], institution: str) -> User:
        """An account made by init's security administrator, signed in and past its
        first login (once: later calls give the same user)."""
        if name not in self.ready:
            made = self.user("secadmin").call("POST", "/api/users", json={
                "name": name, "institution": institution, "roles": roles})
            if made.status_code == 202:  # four eyes: a second security administrator
                one_time = self._approved(made.json()["approval"]["id"])
            else:
                assert made.status_code == 201, made.text
                one_time = made.json()["one_time_password"]
            self.ready[name] = first_login(self.server, name, one_time)
        return self.ready[name]

    def _approved(self, approval_id: int) -> str:
        """An administrator account's creation approved by another signed-in security
        administrator (once one exists, --single-security-admin waives nothing); its
        one-time password, which the approver is shown."""
        for other_name, other in self.ready.items():
            if other_name == "secadmin":
                continue
            done = other.call("POST", f"/api/approvals/{approval_id}/approve")
            if done.status_code == 200:
                return str(done.json()["one_time_password"])
        raise AssertionError(f"no second security administrator approved #{approval_id}")


def audit_records(catalog_url: str, *actions: str) -> list[dict[str, Any]]:
    """The audit trail's records (public form) in order; only those of `actions` when
    given."""
    catalog = Catalog(catalog_url)
    try:
        return [r.public() for r in read_records(catalog)
                if not actions or r.action in actions]
    finally:
        catalog.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120,
             every: float = 0.3) -> Any:
    """The first true value `check` returns; AssertionError naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


KEEP_ALIVE = 2
"""Seconds of silence before the site server's live streams send a comment (15 by
default: a test waits for one)."""


def _site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("server")
    env = base_env(tmp)
    for url in catalog_urls(request.param, tmp / "catalog.db", "medark_server"):
        passwords = init(env, url)
        # one security administrator (init's) makes the accounts every test needs:
        # four-eyes approvals have their own servers (test_server_approvals_cli.py)
        server = start(env, url, "--lockout-after", str(LOCKOUT_AFTER), "--lockout-for",
                       str(LOCKOUT_SECONDS), "--login-rate", "10000",
                       "--single-security-admin", "--keep-alive", str(KEEP_ALIVE))
        made = Site(env, url, server, passwords, tmp)
        try:
            yield made
        finally:
            log = server.stop()
            secrets = [*passwords.values(), *(u.password for u in made.ready.values()),
                       *(u.totp.secret for u in made.ready.values() if u.totp)]
            assert not [s for s in secrets if s in log], "a secret in the server's log"


def site_fixture() -> Any:
    """The module's `site` fixture (`site = site_fixture()`): an initialised catalog, on
    SQLite then PostgreSQL, with a `medark server` on it."""
    return pytest.fixture(scope="module", params=KINDS, name="site")(_site)


FILES_CONFIG = """\
[sites.main]
location = "CN-SC"
[repositories.local]
site = "main"
url = "/backup"
[systems.his]
owner = "IT"
[[systems.his.sources]]
type = "files"
paths = ["/srv/his"]
[plans.his]
system = "his"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "1h"
retention = { daily = 7 }
"""
"""A hospital's smallest configuration: a files system his backed up daily into a local
repository."""


LIS_NODES = ("host=10.0.0.11 user=medark dbname=lis", "host=10.0.1.11 user=medark dbname=lis")
"""The DSNs of the lis pair's configured primary (at site main) and standby (at east)."""


def lis_pair_config(more: str = "", drill: str | None = None) -> str:
    """A configuration with two sites, main and east (a campus), a local repository at
    main, a PostgreSQL system lis backed up daily into it and its DR pair (LIS_NODES);
    `more` TOML (other repositories, systems and plans) before the [dr.lis] table, and
    the pair's `drill` schedule when given."""
    drill_line = f'drill = "{drill}"\n' if drill else ""
    return f"""\
[sites.main]
location = "CN-SC"
[sites.east]
location = "CN-SC"
role = "campus"

[repositories.local]
site = "main"
url = "/backup"

[systems.lis]
owner = "IT"
[[systems.lis.sources]]
type = "postgres"
dsn = "{LIS_NODES[0]}"

[plans.lis]
system = "lis"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "1h"
retention = {{ daily = 7 }}
{more}
[dr.lis]
{drill_line}""" + dr_nodes("lis", *LIS_NODES)


def lis_pair_status(serving: str = "main", lag_bytes: int = 0, lag_seconds: float = 0.1,
                    last_drill: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`medark --json dr status` of lis_pair_config's pair, healthy, `serving` the site
    whose node is now the primary (the configured primary at main, standby at east)."""
    return [{
        "system": "lis", "kind": "postgres", "feed": "stream", "supported": True,
        "note": "",
        "nodes": [{"configured": "primary", "site": "main", "address": "10.0.0.11:5432",
                   "role": "primary" if serving == "main" else "standby",
                   "reachable": True},
                  {"configured": "standby", "site": "east", "address": "10.0.1.11:5432",
                   "role": "primary" if serving == "east" else "standby",
                   "reachable": True}],
        "lag": {"bytes": lag_bytes, "seconds": lag_seconds, "basis": "replay", "error": None,
                "max_lag_bytes": 16777216, "max_lag_seconds": 60.0, "over_limit": []},
        "healthy": True, "problems": [], "last_drill": last_drill}]


def his_config(inst: str, schedule: str = "*/15 * * * *", title: str = "主院区") -> str:
    """An institution's configuration document for the configuration views: one site
    (`title`), a local repository under /backup/INST, a PostgreSQL system his and its
    plan on `schedule`; no password in it (the server refuses one)."""
    return f"""\
# {inst}'s protection
[sites.main]
name = "{title}"
location = "CN-SC"

[repositories.local]
site = "main"
url = "/backup/{inst}"

[systems.his]
owner = "IT"
records = "outpatient"

[[systems.his.sources]]
type = "postgres"
dsn = "host=db dbname=his"

[plans.his]
system = "his"
repository = "local"
schedule = "{schedule}"
rpo = "15min"
rto = "1h"
retention = {{ daily = 30, yearly = 15 }}
"""


def local_repository(repo: Path, password_file: Path) -> str:
    """TOML: site main and the local repository `repo` there, opened with the password
    in `password_file`."""
    return f"""\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"
"""


def streamed_his(dsn: str, rpo: str = "1y") -> str:
    """TOML: a PostgreSQL system his at `dsn` whose WAL the agent streams, and its plan
    his into the local repository (a schedule that does not fire during a test)."""
    return f"""\
[systems.his]
owner = "IT"

[[systems.his.sources]]
type = "postgres"
dsn = "{dsn}"
stream = true

[plans.his]
system = "his"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "{rpo}"
rto = "1h"
retention = {{ last = 3 }}
"""


def pacs_config(repo: Path, password_file: Path, data: Path, *, schedule: str = "0 3 1 1 *",
                rpo: str = "1y", more: str = "") -> str:
    """A hospital's configuration an agent runs: the files of `data` as system pacs, its
    plan pacs into the local repository `repo` (a schedule that does not fire during a
    test by default: jobs are asked for); `more` TOML after it (other systems and plans,
    an [agent] table)."""
    return local_repository(repo, password_file) + f"""
[systems.pacs]
owner = "radiology"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "{schedule}"
rpo = "{rpo}"
rto = "1h"
retention = {{ last = 3 }}
{more}"""


def new_repository(env: dict[str, str], repo: Path, password_file: Path) -> None:
    """A repository made by `medark init` at `repo`, its password (PASSWORD) in
    `password_file` (0600, its directory made if need be)."""
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    made = run({**env, "MEDARK_PASSWORD_FILE": str(password_file)}, "--repo", str(repo),
               "init")
    assert made.returncode == 0, made.stderr


def import_config(env: dict[str, str], catalog: str, institution: str, path: Path) -> None:
    """`medark server config import` of the file at `path` as the institution's."""
    done = run(env, "server", "config", "import", "--catalog", catalog, "--institution",
               institution, str(path))
    assert done.returncode == 0, done.stderr


def enrolment_token(sysadmin: User, institution: str, name: str | None = None,
                    hours: int | None = None) -> str:
    """A single-use enrolment token for an agent of the institution (its name when
    given), asked for by a system administrator."""
    body: dict[str, Any] = {"institution": institution}
    if name:
        body["name"] = name
    if hours is not None:
        body["hours"] = hours
    made = sysadmin.call("POST", "/api/agents/enrolment-tokens", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


def enroll(env: dict[str, str], server_url: str, token: str, state: Path, *args: str
           ) -> subprocess.CompletedProcess[str]:
    """`medark agent enroll` into the state directory (its answer, whatever it is)."""
    return run(env, "agent", "enroll", "--server", server_url, "--token", token,
               "--state-dir", str(state), *args)


def start_agent(env: dict[str, str], state: Path, config: Path, grace: int = 20
                ) -> subprocess.Popen[str]:
    """`medark agent run` of an enrolled state directory: a heartbeat a second, asking
    for jobs every 2 s."""
    return subprocess.Popen(
        [MEDARK, "agent", "run", "--state-dir", str(state), "--config", str(config),
         "--heartbeat", "1", "--wait", "2", "--grace", str(grace)],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop_agent(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """SIGTERM to a running agent; its exit code, standard output and error."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@contextmanager
def running_agent(env: dict[str, str], server_url: str, sysadmin: User, institution: str,
                  name: str, state: Path, config: Path) -> Iterator[subprocess.Popen[str]]:
    """An agent of the institution enrolled (as `name`, into `state`) and running with
    `config` for the block; stopped after it, with no traceback."""
    enrolled = enroll(env, server_url, enrolment_token(sysadmin, institution, name),
                      state)
    assert enrolled.returncode == 0, enrolled.stderr
    proc = start_agent(env, state, config)
    try:
        yield proc
    finally:
        _code, _out, err = stop_agent(proc)
        assert "Traceback" not in err, err
