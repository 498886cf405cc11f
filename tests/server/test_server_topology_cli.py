"""`medark server`'s topology after a DR switch-over, over real HTTP on SQLite and
PostgreSQL catalogs: the agent reports its pair's roles with its heartbeat (as `medark
agent` sends `medark --json dr status`), and the topology places the serving side at the
site now serving and the standby at the other site of the pair."""

from __future__ import annotations

from typing import Any

import pytest
from server_site import Site, User, lis_pair_config, lis_pair_status, site_fixture

site = site_fixture()

CONFIG = lis_pair_config()


@pytest.fixture(scope="module")
def ready(site: Site) -> dict[str, Any]:
    sysadmin = site.user("sysadmin")
    made = sysadmin.call("POST", "/api/institutions", json={"name": "topo-a"})
    assert made.status_code == 201, made.text
    saved = sysadmin.call("PUT", "/api/institutions/topo-a/config", json={
        "document": CONFIG, "comment": "first", "base_version": None})
    assert saved.status_code == 200, saved.text
    token = sysadmin.call("POST", "/api/agents/enrolment-tokens", json={
        "institution": "topo-a"}).json()["secret"]
    agent = site.server.client()
    enrolled = agent.post("/api/agent/enroll", json={
        "token": token, "name": "topo-agent", "host": "topo-agent.local", "version": "1"})
    assert enrolled.status_code == 201, enrolled.text
    agent.headers["Authorization"] = f"Bearer {enrolled.json()['credential']}"
    return {"viewer": site.new_user("topo-viewer", ["viewer"], "topo-a"), "agent": agent}


def report(ready: dict[str, Any], serving: str | None) -> None:
    """A heartbeat with the pair's roles (`serving`: the primary's site), or none."""
    body: dict[str, Any] = {"version": "1", "plans": ["lis"], "dr_systems": ["lis"]}
    if serving is not None:
        body["dr_status"] = lis_pair_status(serving)
    beat = ready["agent"].post("/api/agent/heartbeat", json=body)
    assert beat.status_code in (200, 204), beat.text


def placed(viewer: User) -> dict[str, tuple[str | None, str | None]]:
    """Each of the pair's nodes: (its site, its parent node)."""
    answer = viewer.call("GET", "/api/topology?institution=topo-a")
    assert answer.status_code == 200, answer.text
    nodes = {n["id"]: n for n in answer.json()["nodes"]}
    [link] = [link for link in answer.json()["links"] if link["type"] == "replication"]
    assert (link["source"], link["target"]) == ("system:topo-a/lis", "standby:topo-a/lis")
    return {kind: (nodes[f"{kind}:topo-a/lis"]["site"], nodes[f"{kind}:topo-a/lis"]["parent"])
            for kind in ("system", "standby")}


def test_the_standby_sits_at_the_site_not_serving(ready: dict[str, Any]) -> None:
    viewer = ready["viewer"]
    # nothing reported yet: where the configuration puts them
    report(ready, None)
    assert placed(viewer) == {"system": ("main", "site:topo-a/main"),
                              "standby": ("east", "site:topo-a/east")}
    report(ready, "main")
    assert placed(viewer) == {"system": ("main", "site:topo-a/main"),
                              "standby": ("east", "site:topo-a/east")}
    # switched over: east serves, the old primary at main stands by
    report(ready, "east")
    assert placed(viewer) == {"system": ("east", "site:topo-a/east"),
                              "standby": ("main", "site:topo-a/main")}
    # and back
    report(ready, "main")
    assert placed(viewer) == {"system": ("main", "site:topo-a/main"),
                              "standby": ("east", "site:topo-a/east")}
