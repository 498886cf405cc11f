"""The cross-reference checks of a configuration that breaks its schema.

pydantic refuses a file with a schema error as a whole, so the checks of
`MedarkConfig.problems()` (a copy to an unknown repository, retention under the record
minimum, …) would only run once every schema error was fixed, and `config check` would
report a file's mistakes in rounds. Here the configuration is rebuilt from what did
validate (every key without an error, at any depth), with a stand-in for each key that
failed (its own value when the type fits, else a zero value), the checks run over it, and
a problem found at, above or under a key that failed is dropped: it would be judged on a
stand-in, not on the file. One broken key thus skips only the checks that need it.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from medark.config.plans import MedarkConfig, Path

Checks = Callable[[MedarkConfig], list[tuple[Path, str]]]

_STRIP = ConfigDict(str_strip_whitespace=True)  # as the models' own config does

_READS: list[tuple[Path, Path]] = [
    (("plans", "*", "offsite_restore_test"), ("plans", "*", "copies")),
    (("systems", "*", "sources", "*"), ("systems", "*", "sources", "*", "type")),
    (("alerts", "email"), ("alerts", "email")),
    (("dr", "*", "standby"), ("dr", "*", "primary")),
    (("dr", "*", "*", "control"), ("dr", "*", "*", "kind")),
    (("dr", "*", "feed"), ("dr", "*", "repository")),
    (("dr", "*", "repository"), ("dr", "*", "feed")),
    (("dr", "*", "slot"), ("dr", "*", "feed")),
    (("dr", "*", "slot"), ("dr", "*", "primary")),
    (("dr", "*", "synchronous"), ("dr", "*", "feed")),
    (("dr", "*", "services"), ("dr", "*", "primary")),
    (("dr", "*", "services"), ("dr", "*", "standby")),
    (("dr", "*", "client_switch"), ("dr", "*", "primary")),
]
"""Checks that read other keys than the one they report: a problem matching the first
pattern is not judged when a schema error matches the second ("*" the same key in both).
Keep it in step with `MedarkConfig.problems()`."""

_NAMES: dict[str, list[Path]] = {
    "sites": [("repositories", "*", "site"), ("dr", "*", "primary", "site"),
              ("dr", "*", "standby", "site"), ("dr", "*", "services"),
              ("dr", "*", "health", "*", "site")],
    "repositories": [("plans", "*", "repository"), ("plans", "*", "copies"),
                     ("dr", "*", "repository")],
    "systems": [("plans", "*", "system"), ("profiles", "*", "requirements", "*", "systems"),
                ("dr", "*")],
    "profiles": [("hospital", "tier")],
}
"""Where names of a section are looked up: not judged when the section itself is not a
table of entries (its names are unknown, not undefined)."""


def cross_problems(raw: dict[str, Any], broken: list[Path], checks: Checks
                   ) -> list[tuple[Path, str]]:
    """`checks` over what validated of `raw`, except where a schema error (at `broken`)
    makes a check meaningless."""
    config = _salvage(raw, MedarkConfig, MedarkConfig, (), broken)
    assert isinstance(config, MedarkConfig)
    try:
        found = checks(config)
    except (AttributeError, TypeError, ValueError, KeyError, ValidationError):
        return []  # a check a stand-in cannot serve: the schema errors are reported alone
    return [(where, message) for where, message in found
            if not any(_related(where, error) for error in broken)]


def _related(problem: Path, error: Path) -> bool:
    """The problem is at, above or under the error's key, or its check reads that key."""
    n = min(len(problem), len(error))
    if problem[:n] == error[:n]:
        return True
    if len(error) == 1 and any(_matches(p, problem) for p in _NAMES.get(str(error[0]), [])):
        return True
    return any(_matches(reported, problem) and _matches(read, error)
               and all(problem[i] == error[i] for i, part in enumerate(reported) if part == "*")
               for reported, read in _READS)


def _matches(pattern: Path, path: Path) -> bool:
    return len(path) >= len(pattern) and all(p in ("*", path[i]) for i, p in enumerate(pattern))


def _salvage(value: Any, shape: Any, validating: Any, at: Path, broken: list[Path]) -> Any:
    """`value` validated as `validating` (`shape` without constraints) where no error lies
    at or under `at`; else rebuilt part by part."""
    under = [e[len(at):] for e in broken if e[:len(at)] == at]
    if not under:
        try:
            return _adapter(validating).validate_python(value)
        except ValidationError:  # not expected: the whole file's validation passed here
            return _stand_in(shape, value)
    if () in under:
        return _stand_in(shape, value)
    shape = _unwrap(shape)
    origin = get_origin(shape)
    if isinstance(shape, type) and issubclass(shape, BaseModel) and isinstance(value, dict):
        fields: dict[str, Any] = {}
        for name, info in shape.model_fields.items():
            inner = info.annotation
            checked = Annotated[inner, *info.metadata] if info.metadata else inner
            if name in value:
                fields[name] = _salvage(value[name], inner, checked, (*at, name), broken)
            elif info.is_required():
                fields[name] = _stand_in(inner, None)
        return shape.model_construct(**fields)
    if origin is list and isinstance(value, list):
        (item,) = get_args(shape)
        return [_salvage(v, item, item, (*at, i), broken) for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        _key, item = get_args(shape)
        return {k: _salvage(v, item, item, (*at, k), broken) for k, v in value.items()}
    if _is_union(shape) and value is not None:
        members = [a for a in get_args(shape) if a is not type(None)]
        if len(members) == 1:
            return _salvage(value, members[0], members[0], at, broken)
    return _stand_in(shape, value)


def _stand_in(shape: Any, value: Any) -> Any:
    """A value of type `shape` for a key that failed: its own when the type fits."""
    shape = _unwrap(shape)
    origin = get_origin(shape)
    if _is_union(shape):
        members = get_args(shape)
        if type(None) in members:
            return None
        return _stand_in(members[0], value)
    if origin is Literal:
        choices = get_args(shape)
        return value if value in choices else choices[0]
    if origin is list or shape is list:
        return []
    if origin is dict or shape is dict:
        return {}
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        return shape.model_construct(**{name: _stand_in(info.annotation, None)
                                        for name, info in shape.model_fields.items()
                                        if info.is_required()})
    if shape is timedelta:
        return timedelta(0)
    if shape in (str, int, float, bool):
        return value if type(value) is shape else shape()
    return None


def _unwrap(shape: Any) -> Any:
    return get_args(shape)[0] if get_origin(shape) is Annotated else shape


def _is_union(shape: Any) -> bool:
    return get_origin(shape) in (Union, types.UnionType)


def _adapter(shape: Any) -> TypeAdapter[Any]:
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        return TypeAdapter(shape)
    return TypeAdapter(shape, config=_STRIP)
