"""One DR action from claim to record: the catalog claim (one action per system at a
time), its steps, its end status, and the outcome the command prints.

The status is `succeeded`, `failed` (something went wrong after which the roles may have
changed: the steps say what happened) or `rolled_back` (a failure before promotion,
undone: the original primary serves again). A process killed mid-action leaves the row
`running` with the steps it finished; the next action on the system closes it.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.errors import MedarkError
from medark.service.dr.steps import Steps
from medark.util import clock


@dataclass
class ActionState:
    """What the action's body learns as it goes."""

    rolled_back: bool = False
    switch_seconds: float | None = None
    """From holding the clients to releasing them at the new primary: the time writes
    could not complete."""
    new_primary: str | None = None
    data_loss: dict[str, Any] | None = None
    afterwards: MedarkError | None = None
    """A problem after a successful switch (the old primary not reinstated): the action
    succeeded, the command still exits with this error's code."""


@dataclass
class DrOutcome:
    action_id: int
    system: str
    kind: str
    status: str
    steps: list[DrStep]
    total_seconds: float
    state: ActionState
    error: MedarkError | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def problem(self) -> MedarkError | None:
        """What the command exits with: the failure, else a problem after success."""
        return self.error or self.state.afterwards

    def public(self) -> dict[str, Any]:
        problem = self.problem
        return {"action": self.action_id, "system": self.system, "kind": self.kind,
                "status": self.status, "total_seconds": round(self.total_seconds, 3),
                "switch_seconds": (None if self.state.switch_seconds is None
                                   else round(self.state.switch_seconds, 3)),
                "new_primary": self.state.new_primary, "data_loss": self.state.data_loss,
                "steps": [s.stored() for s in self.steps],
                "error": None if problem is None else {
                    "code": problem.code, "exit_code": problem.exit_code,
                    "message": str(problem)}}


def requester() -> str:
    """Who asked: the OS user and host (the management server will pass its user)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def run_action(catalog: Catalog, system: str, kind: str,
               body: Callable[[Steps, ActionState], None], *,
               requested_by: str | None = None,
               on_step: Callable[[DrStep], None] | None = None) -> DrOutcome:
    """Claim `system` for `kind` (SwitchRefused, exit 30, while another action runs), run
    `body`, record how it ended. A MedarkError from `body` is the outcome's error, not
    raised: the caller prints the steps first."""
    action_id = catalog.start_dr_action(system, kind, requested_by or requester())
    steps = Steps(catalog, action_id, on_step)
    state = ActionState()
    start = clock.monotonic()
    error: MedarkError | None = None
    try:
        body(steps, state)
        status = "succeeded"
    except MedarkError as exc:
        error = exc
        status = "rolled_back" if state.rolled_back else "failed"
    except BaseException as exc:
        catalog.finish_dr_action(action_id, "failed", switch_seconds=state.switch_seconds,
                                 data_loss=state.data_loss,
                                 error=f"interrupted: {type(exc).__name__}")
        raise
    problem = error or state.afterwards
    catalog.finish_dr_action(action_id, status, switch_seconds=state.switch_seconds,
                             data_loss=state.data_loss,
                             error=None if problem is None else str(problem))
    return DrOutcome(action_id, system, kind, status, steps.done,
                     clock.monotonic() - start, state, error)
