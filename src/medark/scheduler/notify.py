"""Delivering alerts: a generic JSON webhook, the WeCom and DingTalk group-robot formats
Chinese hospitals use, and e-mail over SMTP.

Each configured channel is one `Channel`, named by its config key (`webhooks[0]`,
`email`) so the catalog can remember which ones an alert has not reached. `deliver`
tries every channel and retries the failing ones with doubling pauses (`alerts.tries`,
`alerts.backoff`), within DELIVERY_DEADLINE; what it returns is what is still
undelivered. A failure line never carries a secret: webhook URLs are shown by host only
(robot keys live in the query, and some services put them in the path), and the SMTP
password and DingTalk secret are scrubbed from whatever an error says.

Mail with a login goes over TLS (STARTTLS or SMTPS, config/plans.py refuses otherwise
unless waived) and the server's certificate is verified: ssl.create_default_context,
with the system's CAs or `ca_file`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from medark.config.plans import AlertsConf, EmailConf, Webhook

TIMEOUT = 10.0
"""Seconds one attempt on one channel may take to connect or answer."""
DELIVERY_DEADLINE = 120.0
"""No retry round of one notice starts later than this after its first try."""

Wait = Callable[[float], bool]
"""Pause that many seconds; True when delivery should stop early (shutdown)."""


@dataclass(frozen=True)
class Notice:
    key: str
    kind: str
    plan: str
    state: str
    """firing or resolved."""
    title: str
    text: str
    details: dict[str, Any]

    def stored(self) -> dict[str, Any]:
        """What the catalog keeps to send it again word for word."""
        return {"state": self.state, "title": self.title, "text": self.text,
                "details": self.details}


@dataclass(frozen=True)
class Channel:
    id: str
    """The config key: webhooks[N] or email."""
    label: str
    """How failure lines name it (no secret)."""
    send: Callable[[Notice], None]
    secrets: tuple[str, ...]
    """Strings never to print: URL query and path, password, signing secret."""


def channels(conf: AlertsConf) -> list[Channel]:
    found = [Channel(f"webhooks[{i}]", f"webhook webhooks[{i}] ({_host(hook.url)})",
                     _webhook_sender(hook), _url_secrets(hook.url))
             for i, hook in enumerate(conf.webhooks)]
    if conf.email is not None:
        mail = conf.email
        found.append(Channel("email", f"e-mail via {mail.smtp}",
                             lambda notice: _mail(mail, notice), ()))
    return found


def deliver(conf: AlertsConf, notice: Notice, only: set[str] | None = None,
            wait: Wait | None = None) -> tuple[dict[str, str], int]:
    """Send to every channel (or those in `only`), retrying the failing ones; returns
    ({channel id: last failure line} for those never reached, tries made)."""
    pause = wait or _sleep
    todo = [c for c in channels(conf) if only is None or c.id in only]
    failed: dict[str, str] = {}
    began = time.monotonic()
    delay = conf.backoff.total_seconds()
    tries = 0
    while todo:
        tries += 1
        failed = {}
        for channel in todo:
            problem = _try(channel, notice)
            if problem is not None:
                failed[channel.id] = problem
        todo = [c for c in todo if c.id in failed]
        if not todo or tries >= conf.tries:
            break
        if time.monotonic() - began + delay > DELIVERY_DEADLINE or pause(delay):
            break
        delay *= 2
    return failed, tries


def _try(channel: Channel, notice: Notice) -> str | None:
    try:
        channel.send(notice)
    except (OSError, ValueError, smtplib.SMTPException) as exc:
        return f"{channel.label}: {_scrub(str(exc) or type(exc).__name__, channel)}"
    return None


def _scrub(message: str, channel: Channel) -> str:
    for secret in channel.secrets:
        if secret:
            message = message.replace(secret, "***")
    return " ".join(message.split())


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


# ---- webhooks -------------------------------------------------------------------------


def _webhook_sender(hook: Webhook) -> Callable[[Notice], None]:
    return lambda notice: _post(_hook_url(hook), _hook_body(hook, notice))


def _hook_body(hook: Webhook, notice: Notice) -> dict[str, Any]:
    markdown = f"### {notice.title}\n\n{notice.text}"
    if hook.format == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": markdown}}
    if hook.format == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": notice.title, "text": markdown}}
    return {"source": "medark", "key": notice.key, "kind": notice.kind, "plan": notice.plan,
            "status": notice.state, "title": notice.title, "text": notice.text,
            "details": notice.details}


def _hook_url(hook: Webhook) -> str:
    """DingTalk robots with signing (加签): timestamp and HMAC-SHA256 sign in the URL."""
    if hook.format != "dingtalk" or not hook.secret_file:
        return hook.url
    secret = _first_line(hook.secret_file)
    stamp = str(int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    joiner = "&" if "?" in hook.url else "?"
    return f"{hook.url}{joiner}timestamp={stamp}&sign={sign}"


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
        answer = reply.read()
    try:  # WeCom and DingTalk answer 200 with {"errcode": N, "errmsg": ...}
        doc = json.loads(answer) if answer else {}
    except ValueError:
        return
    if isinstance(doc, dict) and doc.get("errcode") not in (None, 0):
        raise ValueError(f"refused: errcode {doc.get('errcode')} {doc.get('errmsg', '')}")


def _host(url: str) -> str:
    """scheme://host[:port] of a webhook: the rest may hold its key."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _url_secrets(url: str) -> tuple[str, ...]:
    parts = urllib.parse.urlsplit(url)
    found = [url, parts.query, parts.password or ""]
    found += [value for _key, value in urllib.parse.parse_qsl(parts.query)]
    if parts.path.strip("/"):
        found.append(parts.path)
    return tuple(sorted({s for s in found if len(s) > 3}, key=len, reverse=True))


# ---- e-mail ---------------------------------------------------------------------------


def _mail(conf: EmailConf, notice: Notice) -> None:
    message = EmailMessage()
    message["Subject"] = notice.title
    message["From"] = conf.sender
    message["To"] = ", ".join(conf.to)
    message.set_content(notice.text)
    password = _first_line(conf.password_file, strip=False) if conf.password_file else ""
    try:
        _send_mail(conf, message, password)
    except smtplib.SMTPException as exc:  # scrubbed here: the channel does not know it
        text = str(exc).replace(password, "***") if len(password) > 3 else str(exc)
        raise smtplib.SMTPException(text) from None
    except OSError as exc:
        text = str(exc).replace(password, "***") if len(password) > 3 else str(exc)
        raise OSError(text) from None


def _send_mail(conf: EmailConf, message: EmailMessage, password: str) -> None:
    context = _tls(conf) if conf.implicit_tls or conf.use_starttls else None
    smtp: smtplib.SMTP
    if conf.implicit_tls:
        smtp = smtplib.SMTP_SSL(conf.host, conf.port, timeout=TIMEOUT, context=context)
    else:
        smtp = smtplib.SMTP(conf.host, conf.port, timeout=TIMEOUT)
    with smtp:
        if conf.use_starttls:  # refused (SMTPNotSupportedError) if the server cannot
            smtp.starttls(context=context)
        if conf.username:
            smtp.login(conf.username, password)
        smtp.send_message(message)


def _tls(conf: EmailConf) -> ssl.SSLContext:
    """Certificate and host name verified: against `ca_file`, else the system's CAs."""
    return ssl.create_default_context(cafile=conf.ca_file)


def _first_line(path: str, strip: bool = True) -> str:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    first = lines[0] if lines else ""
    return first.strip() if strip else first
