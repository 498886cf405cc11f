"""Request and response bodies of the agents' endpoints (routes/agents.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from medark.server.agents import MAX_TOKEN_HOURS
from medark.server.schemas import NAMED, Reply, Strict
from medark.server.schemas_recovery import WindowReport


def _whole(value: Any) -> Any:
    """JSON Schema's integer includes 7.0; strict pydantic would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Hours = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_TOKEN_HOURS),
                  WithJsonSchema({"type": "integer", "minimum": 1,
                                  "maximum": MAX_TOKEN_HOURS})]
Count = Annotated[int, BeforeValidator(_whole), Field(ge=0, le=10**15),
                  WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 10**15})]
Seconds = Annotated[float, BeforeValidator(lambda v: float(v) if isinstance(v, int)
                                           and not isinstance(v, bool) else v),
                    Field(ge=1, le=3600),
                    WithJsonSchema({"type": "number", "minimum": 1, "maximum": 3600})]
Text = Annotated[str, Field(max_length=200)]
PlanName = Annotated[str, Field(min_length=1, max_length=200)]


def _text_time(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("a time is an RFC 3339 string")
    return value


Time = Annotated[datetime, BeforeValidator(_text_time), Field(strict=False),
                 WithJsonSchema({"type": "string", "format": "date-time"})]
"""RFC 3339 (strict pydantic would take no string); without a zone, UTC."""
LocalId = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=2**53 - 1),
                    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 2**53 - 1})]


class NewEnrolmentToken(Strict):
    institution: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    hours: Hours = 24
    name: str | None = Field(default=None, min_length=1, max_length=64,
                             json_schema_extra=NAMED)
    """The agent's name when `medark agent enroll` gives none."""


class EnrolBody(Strict):
    token: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, min_length=1, max_length=64,
                             json_schema_extra=NAMED)
    host: str = Field(min_length=1, max_length=255)
    version: str = Field(min_length=1, max_length=64)


class HeartbeatBody(Strict):
    version: str = Field(min_length=1, max_length=64)
    plans: list[PlanName] = Field(default_factory=list, max_length=1000)
    queue_length: Count = 0
    interval: Seconds = 10.0
    dr_systems: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=200)
    """The systems of the agent's local [dr] tables (a DR action goes to the agent that
    has the system)."""
    dr_status: list[dict[str, Any]] | None = Field(default=None, max_length=200)
    """`medark dr status --json`'s systems, every few heartbeats; None: not this time."""
    restore_targets: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100)
    """The names of the agent's `[agent] restore_targets` (never their directories):
    the restore wizard offers them."""
    windows: dict[PlanName, Annotated[list[WindowReport], Field(max_length=200)]] | None = (
        Field(default=None, max_length=1000))
    """The recoverable windows of its plans with a streamed database source
    (agent/windows.py), when they changed; None: as last sent."""


class EventBody(Strict):
    kind: Literal["progress", "log"]
    data: dict[str, Any]


class ResultBody(Strict):
    status: Literal["succeeded", "failed", "cancelled"]
    error: str | None = Field(default=None, max_length=4000)
    summary: dict[str, Any] | None = None
    snapshot_id: str | None = Field(default=None, max_length=64)
    bytes_added: Count | None = None


class RemoteResult(Strict):
    local_id: LocalId
    plan: PlanName
    kind: str = Field(min_length=1, max_length=120)
    status: Literal["succeeded", "failed", "cancelled"]
    scheduled_for: Time | None = None
    started_at: Time | None = None
    finished_at: Time | None = None
    error: str | None = Field(default=None, max_length=4000)
    snapshot_id: str | None = Field(default=None, max_length=64)
    bytes_added: Count | None = None
    details: dict[str, Any] | None = None


class ResultsBody(Strict):
    results: list[RemoteResult] = Field(max_length=500)


class EnrolmentTokenView(Reply):
    id: int
    institution: str
    name_hint: str | None
    created_by: str
    created_at: str | None
    expires_at: str | None


class EnrolmentTokenCreated(Reply):
    token: EnrolmentTokenView
    secret: str
    """Shown once: give it to `medark agent enroll --token`."""


class AgentView(Reply):
    name: str
    institution: str
    host: str
    version: str
    state: str
    enrolled_at: str | None
    last_heartbeat: str | None
    plans: list[str]
    kinds: list[str]
    queue_length: int | None
    revoked_at: str | None


class AgentReply(Reply):
    agent: AgentView


class AgentList(Reply):
    agents: list[AgentView]


class Enrolled(Reply):
    agent: AgentView
    credential: str
    """The agent's own credential (`mda_…`), shown once: it goes to the agent's state
    file at 0600."""


class HeartbeatReply(Reply):
    server_time: str
    cancel: list[int]
    """Jobs of this agent whose cancellation was asked for."""


class AgentJob(Reply):
    id: int
    plan: str
    kind: str
    details: dict[str, Any] | None = None
    """A restore's or DR action's parameters (names, never a command or a path on the
    host): snapshot, paths inside it, target name; or the system."""


class JobOffer(Reply):
    job: AgentJob


class EventReply(Reply):
    cancel_requested: bool


class ResultsReply(Reply):
    recorded: int
    duplicates: int
