"""The alert settings: TLS defaults of alert mail (a login means STARTTLS, port 465 means
SMTPS), the combinations refused, and the retry settings' bounds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from medark.config.plans import AlertsConf, EmailConf

BASE = {"smtp": "mail.hospital.example:587", "sender": "medark@h.example",
        "to": ["it@h.example"]}


def _mail(**settings: Any) -> EmailConf:
    return EmailConf.model_validate({**BASE, **settings})


def test_tls_defaults() -> None:
    login = _mail(username="medark", password_file="/etc/medark/smtp")
    assert (login.use_starttls, login.implicit_tls, login.problems()) == (True, False, [])
    relay = _mail()
    assert (relay.use_starttls, relay.implicit_tls) == (False, False)
    smtps = _mail(smtp="mail.hospital.example:465", username="medark")
    assert (smtps.use_starttls, smtps.implicit_tls, smtps.port) == (False, True, 465)
    assert (smtps.host, _mail(smtp="mx").port, _mail(smtp="mx", smtps=True).port) \
        == ("mail.hospital.example", 25, 465)


def test_what_is_refused() -> None:
    clear = _mail(username="medark", starttls=False)
    assert [key for key, _ in clear.problems()] == ["starttls"]
    assert _mail(username="medark", starttls=False, allow_plaintext_login=True).problems() == []
    assert [k for k, _ in _mail(smtps=True, starttls=True).problems()] == ["starttls"]
    assert [k for k, _ in _mail(ca_file="/ca.pem").problems()] == ["ca_file"]
    assert _mail(ca_file="/ca.pem", starttls=True).problems() == []
    assert [k for k, _ in _mail(password_file="/p").problems()] == ["password_file"]
    for smtp in ("mail:0", "mail:smtp", ":25", "mail:70000"):
        with pytest.raises(ValidationError, match="HOST:PORT"):
            _mail(smtp=smtp)


def test_retry_settings() -> None:
    conf = AlertsConf()
    assert (conf.tries, conf.backoff, conf.redeliver) == (4, timedelta(seconds=2),
                                                          timedelta(minutes=5))
    for bad in ({"tries": 0}, {"tries": 11}, {"backoff": "0s"}, {"redeliver": "0s"}):
        with pytest.raises(ValidationError):
            AlertsConf.model_validate(bad)
    with pytest.raises(ValidationError, match="https://"):
        AlertsConf.model_validate({"webhooks": [{"url": "ftp://robot.example/x"}]})
