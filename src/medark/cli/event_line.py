"""The daemon's text log line: `TIME EVENT key=value …`, always exactly one line.

Values are logfmt: bare when they are one printable word, else a JSON string, so a child's
multi-line error or an alert title with spaces can neither break the line nor blur where
a value ends (a log shipper splits on newlines). Lists are joined with commas; None and
empty values are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

BARE = re.compile(r'[^\s"=\\]+')
"""A value printed as it is: no space, quote, equals sign or backslash."""


def event_line(time: str, event: str, details: Mapping[str, object]) -> str:
    fields = [f"{key}={_value(value)}" for key, value in details.items()
              if value is not None and value != [] and value != ""]
    return " ".join([time, event, *fields])


def _value(value: object) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    if BARE.fullmatch(text) and text.isprintable():
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    # json.dumps leaves U+2028, NEL and other non-printables as they are: escape them too,
    # since str.splitlines() and some log readers break lines on them
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in quoted)
