"""Putting back what a switch changed before promotion, whatever the kind of server: the
old primary started again if it was stopped, writable again, the clients released to
it, and its site's services started. The server-specific parts come as callables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medark.config.dr import Service
from medark.service.dr import apps
from medark.service.dr.clients import ClientSwitcher


@dataclass
class Undo:
    old_address: str
    clients: ClientSwitcher
    env: dict[str, str]
    """The services' environment (the old primary's address)."""
    unfence: Callable[[], None]
    restart: Callable[[], str]
    services: list[Service] | None = None
    """Stopped at the old primary's site: started again."""
    readonly: bool = False
    stopped: bool = False

    def run(self) -> str:
        done: list[str] = []
        if self.stopped:
            done.append(self.restart())
        if self.readonly:
            self.unfence()
            done.append(f"{self.old_address} writable again")
        done.append(self.clients.release())
        if self.services:
            done.append("started " + ", ".join(apps.start_all(self.services, self.env)))
        return "; ".join(done)
