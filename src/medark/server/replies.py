"""A route's JSON answer made in its worker thread, as FastAPI would make it.

A sync route that returns a dict has FastAPI validate it against the response model in
a worker thread of its own and then dump it: one more thread hop per request. A route
that calls json_reply() validates and dumps the same way (the same pydantic validation
and `dump_json(by_alias=True)`, so the same bytes) in the thread it already runs in,
and keeps its `response_model` for the OpenAPI document.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.responses import Response


@cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def json_reply(model: type[BaseModel], content: Any, status_code: int = 200) -> Response:
    """`content` checked against `model` (a mismatch is a bug: pydantic's
    ValidationError, a 500) and serialised as FastAPI serialises a route's answer."""
    adapter = _adapter(model)
    body = adapter.dump_json(adapter.validate_python(content, from_attributes=True),
                             by_alias=True)
    return Response(body, status_code=status_code, media_type="application/json")
