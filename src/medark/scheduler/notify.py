"""Delivering alerts: a generic JSON webhook, the WeCom and DingTalk group-robot formats
Chinese hospitals use, and e-mail over SMTP. A delivery that fails is reported to the
caller (the daemon prints it) and never stops the jobs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from medark.config.plans import AlertsConf, EmailConf, Webhook

TIMEOUT = 10.0


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


def deliver(conf: AlertsConf, notice: Notice) -> list[str]:
    """Send to every configured channel; the failures, one line each."""
    failures = []
    for hook in conf.webhooks:
        try:
            _post(_hook_url(hook), _hook_body(hook, notice))
        except (OSError, ValueError) as exc:
            failures.append(f"webhook {_safe(hook.url)}: {exc}")
    if conf.email is not None:
        try:
            _mail(conf.email, notice)
        except (OSError, smtplib.SMTPException) as exc:
            failures.append(f"e-mail via {conf.email.smtp}: {exc}")
    return failures


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
    secret = Path(hook.secret_file).read_text(encoding="utf-8").splitlines()[0].strip()
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


def _mail(conf: EmailConf, notice: Notice) -> None:
    message = EmailMessage()
    message["Subject"] = notice.title
    message["From"] = conf.sender
    message["To"] = ", ".join(conf.to)
    message.set_content(notice.text)
    host, _, port = conf.smtp.rpartition(":")
    with smtplib.SMTP(host or conf.smtp, int(port) if port.isdigit() else 25,
                      timeout=TIMEOUT) as smtp:
        if conf.starttls:
            smtp.starttls()
        if conf.username:
            password = ""
            if conf.password_file:
                password = Path(conf.password_file).read_text(encoding="utf-8").splitlines()[0]
            smtp.login(conf.username, password)
        smtp.send_message(message)


def _safe(url: str) -> str:
    """A webhook URL without its query (robot keys and signatures live there)."""
    return url.split("?", 1)[0]
