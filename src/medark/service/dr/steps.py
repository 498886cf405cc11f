"""The steps of one DR action, timed, written to the catalog as each ends, and shown live.

A step is written when it ends, so an action whose process died still shows in
`dr history` how far it got. The caller sees each step through `on_step` as it ends (the
command prints it with its duration); the management server will stream the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.errors import MedarkError
from medark.service.dr.nodes import one_line
from medark.util import clock

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
WARNING = "warning"
"""The step could not do its job but the action goes on (the old primary could not be
reinstated after a successful switch)."""


@dataclass
class StepNote:
    """What a running step has to say about itself (shown and recorded when it ends)."""

    detail: str = ""
    result: str = OK


@dataclass
class Steps:
    """The steps of DR action `action_id`, in order."""

    catalog: Catalog
    action_id: int
    on_step: Callable[[DrStep], None] | None = None
    done: list[DrStep] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[StepNote]:
        """Time the block as step `name`; a MedarkError ends it as failed (and goes on
        up), anything else the block sets on the note is recorded as it stands."""
        started, t0 = clock.now(), clock.monotonic()
        note = StepNote()
        try:
            yield note
        except MedarkError as exc:
            self._record(DrStep(name, started, clock.monotonic() - t0, FAILED,
                                one_line(exc)))
            raise
        self._record(DrStep(name, started, clock.monotonic() - t0, note.result, note.detail))

    def skip(self, name: str, why: str) -> None:
        self._record(DrStep(name, clock.now(), 0.0, SKIPPED, why))

    def _record(self, step: DrStep) -> None:
        self.done.append(step)
        self.catalog.record_step(self.action_id, step)
        if self.on_step is not None:
            self.on_step(step)
