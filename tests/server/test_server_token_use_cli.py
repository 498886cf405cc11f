"""An API token's last use over real HTTP on SQLite and PostgreSQL: recorded on its first
request (the write is skipped only while the last one is recent, so a busy token's
requests do not each commit and queue on its row)."""

from __future__ import annotations

from datetime import datetime

from server_site import Site, site_fixture

site = site_fixture()


def _last_used(site: Site, name: str) -> str | None:
    tokens = site.user("secadmin").call("GET", "/api/tokens").json()["tokens"]
    return next(t["last_used"] for t in tokens if t["name"] == name)


def test_a_tokens_first_use_is_recorded_and_later_ones_keep_working(site: Site) -> None:
    made = site.user("secadmin").call("POST", "/api/tokens", json={
        "name": "use-bot", "role": "viewer", "institution": "center", "days": 1})
    assert made.status_code == 201, made.text
    assert _last_used(site, "use-bot") is None
    bot = site.server.client(headers={"Authorization": f"Bearer {made.json()['secret']}"})
    for _ in range(5):
        assert bot.get("/api/me").status_code == 200
    first = _last_used(site, "use-bot")
    assert first is not None
    assert datetime.fromisoformat(first.replace("Z", "+00:00")).tzinfo is not None
    assert bot.get("/api/jobs?limit=1").status_code == 200
    later = _last_used(site, "use-bot")
    assert later is not None and later >= first
