"""The audit trail's export form, one for `medark audit export` (cli/commands/audit.py)
and the server's download (server/audit_api.py), so that a record exported either way
reads the same: a JSON line of every field (keys sorted, UTF-8 as it is), or a CSV row
under a header of the same fields, its detail a JSON text."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from medark.catalog.audit_trail import AuditRecord, format_at

FORMATS = ("jsonl", "csv")
CSV_FIELDS = ("seq", "at", "actor", "source", "action", "target", "result", "institution",
              "detail", "hash_alg", "key_id", "prev_hash", "hash", "signature")
"""The columns of the CSV form, in order."""


def export_header(form: str) -> str:
    """What comes before the first record: the CSV header row, nothing for JSON lines."""
    return _csv_row(list(CSV_FIELDS)) if form == "csv" else ""


def export_line(record: AuditRecord, form: str) -> str:
    """One record as a JSON line or a CSV row, with its line end."""
    doc: dict[str, Any] = record.public()
    if form != "csv":
        return json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n"
    doc["at"] = format_at(record.at)
    doc["detail"] = json.dumps(record.detail, sort_keys=True, ensure_ascii=False)
    return _csv_row(["" if doc[f] is None else doc[f] for f in CSV_FIELDS])


def _csv_row(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()
