"""Reading the configuration file: TOML syntax, then the schema and the cross-references
(those a schema error leaves checkable, config/salvage.py); every problem reported as
`file:line: key.path: message` (exit 15)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path as FilePath

from pydantic import ValidationError

from medark.config.plans import MedarkConfig, Path
from medark.config.salvage import cross_problems
from medark.config.toml_lines import KeyLines
from medark.errors import ConfigInvalid

Extra = Callable[[MedarkConfig], list[tuple[Path, str]]]
"""More checks from layers above (site locations are judged by policy/residency)."""

_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)|\s*\(at end of document\)")
_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def load_config(path: FilePath, extra: Extra | None = None) -> MedarkConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigInvalid(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(f"{path}: cannot read the configuration: {exc}") from None
    return load_text(text, str(path), extra)


def load_text(text: str, name: str = "", extra: Extra | None = None) -> MedarkConfig:
    """The configuration in `text` (a document the management server keeps, or a file's
    contents), checked as a file is; problems say `name:line:`, or `line N:` without a
    name."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts the position at the end of its message: "... (at line 3, column 7)"
        position = _POSITION.search(str(exc))
        line = (int(position.group(1)) if position and position.group(1)
                else len(text.splitlines()) or 1)
        raise ConfigInvalid(f"{_at(name, line)}: invalid TOML: "
                            f"{_POSITION.sub('', str(exc))}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigInvalid(f"{name or 'the document'}: invalid TOML: arrays or tables "
                            "nested too deeply") from None
    lines = KeyLines(text)
    try:
        config = MedarkConfig.model_validate(raw)
    except ValidationError as exc:
        located = [(tuple(e["loc"]), _message(e)) for e in exc.errors()]
        # The cross-references too, where the schema errors leave them checkable: every
        # mistake in one run, not round after round.
        broken = [where for where, _message_ in located]
        located += cross_problems(raw, broken, lambda c: _cross_checks(c, extra))
        raise _invalid(name, lines, located) from None
    problems = _cross_checks(config, extra)
    if problems:
        raise _invalid(name, lines, problems)
    return config


def _at(name: str, line: int) -> str:
    return f"{name}:{line}" if name else f"line {line}"


def _cross_checks(config: MedarkConfig, extra: Extra | None) -> list[tuple[Path, str]]:
    return config.problems() + (extra(config) if extra is not None else [])


def _message(error: object) -> str:
    assert isinstance(error, dict)
    kind = str(error.get("type", ""))
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _invalid(name: str, lines: KeyLines, found: list[tuple[Path, str]]) -> ConfigInvalid:
    """Every problem as file:line: key: message (line N: … without a name), in file
    order."""
    located = sorted(((lines.line(where) or 1, where, message) for where, message in found),
                     key=lambda item: item[0])
    problems = []
    for line, where, message in located:
        key = ".".join(f"[{p}]" if isinstance(p, int) else p for p in where).replace(".[", "[")
        problems.append(f"{_at(name, line)}: {key}: {message}" if key
                        else f"{_at(name, line)}: {message}")
    count = f"{len(problems)} problems, the first: {problems[0]}"
    head = problems[0] if len(problems) == 1 else f"{name}: {count}" if name else count
    return ConfigInvalid(head, problems)
