"""Alerts from the real daemon to real servers on loopback: a generic webhook, the WeCom
and DingTalk robot formats (DingTalk signed) and SMTP mail. A failing plan fires once per
condition however often it fails again, and resolves when its backups succeed."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from conftest import MEDARK, Cli
from plan_site import write_plan_config

CONFIG = """\
[[alerts.webhooks]]
url = "http://127.0.0.1:{http}/generic"

[[alerts.webhooks]]
url = "http://127.0.0.1:{http}/wecom?key=robot-key"
format = "wecom"

[[alerts.webhooks]]
url = "http://127.0.0.1:{http}/dingtalk?access_token=t"
format = "dingtalk"
secret_file = "{secret}"

[alerts.email]
smtp = "127.0.0.1:{smtp}"
sender = "medark@hospital.example"
to = ["it@hospital.example"]

[systems.lis]
owner = "lab"

[[systems.lis.sources]]
type = "files"
paths = ["{lis}"]

[plans.lis]
system = "lis"
repository = "local"
schedule = "every 1s"
retries = 0
rpo = "4s"
rto = "1h"
retention = {{ daily = 7 }}
"""


class Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hooks.received.append((self.path, body))
        answer = b'{"errcode": 0, "errmsg": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: object) -> None:
        pass


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def servers() -> Iterator[tuple[int, Mailbox, int]]:
    Hooks.received = []
    http = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    mailbox = Mailbox()
    with socket.socket() as probe:  # aiosmtpd's start() connects to its port: not 0
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        yield http.server_address[1], mailbox, smtp_port
    finally:
        smtp.stop()
        http.shutdown()
        http.server_close()


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _generic(state: str) -> list[str]:
    return [body["key"] for path, body in Hooks.received
            if path == "/generic" and body["status"] == state]


def test_alerts_fire_once_and_resolve(cli: Cli, tmp_path: Path,
                                      servers: tuple[int, Mailbox, int]) -> None:
    http_port, mailbox, smtp_port = servers
    secret = tmp_path / "dingtalk.secret"
    secret.write_text("SEC-test-secret\n")
    lis = tmp_path / "lis"  # missing for now: every backup fails
    config = write_plan_config(cli, tmp_path, CONFIG, http=http_port, smtp=smtp_port,
                               secret=secret, lis=lis)
    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    daemon = subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config), "--poll",
                               "0.1", "--retry-base", "0.2"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _until(lambda: {"job_failed:lis:backup", "rpo_breach:lis"} <= set(_generic("firing")),
               60, "both alerts to fire")
        failures = len(cli("jobs", "--json", "--config", config, password=None).json())
        _until(lambda: len(cli("jobs", "--json", "--config", config, password=None).json())
               >= failures + 3, 60, "more failures")
        assert sorted(_generic("firing")) == ["job_failed:lis:backup", "rpo_breach:lis"]
        lis.mkdir()
        (lis / "result.hl7").write_bytes(os.urandom(1000))
        _until(lambda: {"job_failed:lis:backup", "rpo_breach:lis"} <= set(_generic("resolved")),
               60, "both alerts to resolve")
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert sorted(_generic("resolved")) == ["job_failed:lis:backup", "rpo_breach:lis"]
    wecom = [body for path, body in Hooks.received if path.startswith("/wecom")]
    assert len(wecom) == 4 and all(b["msgtype"] == "markdown" for b in wecom)
    assert any("任务失败" in b["markdown"]["content"] for b in wecom)
    ding = [(path, body) for path, body in Hooks.received if path.startswith("/dingtalk")]
    assert len(ding) == 4
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(ding[0][0]).query)
    assert query["access_token"] == ["t"] and query["timestamp"] and query["sign"]
    assert "超出 RPO" in " ".join(b["markdown"]["title"] for _p, b in ding)
    subjects = [m["Subject"] for m in mailbox.messages]
    assert len(subjects) == 4 and any("任务失败" in s for s in subjects)
    assert cli("alerts", "--open", "--json", "--config", config, password=None).json() == []
    history = cli("alerts", "--json", "--config", config, password=None).json()
    assert sorted(a["key"] for a in history) == ["job_failed:lis:backup", "rpo_breach:lis"]
    assert all(a["resolved_at"] for a in history)
    assert {a["kind"]: a["severity"] for a in history} == {"job_failed": "major",
                                                            "rpo_breach": "critical"}
    assert "超出 RPO" in cli("alerts", "--config", config, password=None).stdout
