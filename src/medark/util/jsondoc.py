"""Reading a JSON document that came from storage: typed fields, or one exception class.

Repository objects (snapshots, locks, hold markers, WAL and binlog records) are JSON that
anyone who can write to the repository may damage or plant, and a record that parses
must not fail later with the wrong type deep inside a restore or a prune. Each getter
returns its declared type or raises one of MALFORMED, which the caller turns into its own
RepositoryCorrupt or IntegrityError line.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from medark.util import clock

MALFORMED = (ValueError, KeyError, TypeError, OverflowError, RecursionError)
"""What decoding a damaged document raises: a wrong type, a number too large for an int,
JSON nested deeper than the parser recurses (RecursionError), invalid UTF-8 (a
ValueError)."""


def load_object(raw: bytes) -> dict[str, Any]:
    """The document, which must be a JSON object."""
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise TypeError(f"the document is a {type(doc).__name__}, not an object")
    return doc


def text(doc: dict[str, Any], key: str, default: str | None = "") -> str:
    """A string field; KeyError when it is required (default None) and missing."""
    value = doc[key] if default is None else doc.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"{key} is a {type(value).__name__}, not a string")
    return value


def texts(doc: dict[str, Any], key: str, required: bool) -> list[str]:
    value = doc[key] if required else (doc.get(key) or [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key} is not a list of strings")
    return value


def integer(doc: dict[str, Any], key: str, low: int = 0, high: int = 1 << 63) -> int:
    """A required whole number in [low, high] (not a float, a bool or a string)."""
    value = doc[key]
    if type(value) is not int:
        raise TypeError(f"{key} is a {type(value).__name__}, not an integer")
    if not low <= value <= high:
        raise ValueError(f"{key} {value} is out of range")
    return value


def flag(doc: dict[str, Any], key: str) -> bool:
    """A required true or false."""
    value = doc[key]
    if not isinstance(value, bool):
        raise TypeError(f"{key} is a {type(value).__name__}, not true or false")
    return value


def timestamp(doc: dict[str, Any], key: str) -> datetime:
    """A required ISO-8601 time (clock.parse_time's rules)."""
    return clock.parse_time(text(doc, key, None))


def hex_ids(doc: dict[str, Any], key: str, length: int = 32) -> list[bytes]:
    """A required list of ids written as hex, each `length` bytes."""
    ids = [bytes.fromhex(v) for v in texts(doc, key, True)]
    if any(len(i) != length for i in ids):
        raise ValueError(f"{key} holds an id that is not {length} bytes")
    return ids
