"""The legal minimum retention of medical records, apart from the configuration schema so
that `forget` enforces it without loading pydantic."""

from __future__ import annotations

from datetime import timedelta

RECORD_MINIMUM = {
    "outpatient": timedelta(days=15 * 365),
    "inpatient": timedelta(days=30 * 365),
}
"""Medical record retention (docs/compliance.md#medical-record-retention): outpatient
and emergency records 15 years from the last visit, inpatient records 30 years from the
last discharge; a year is 365 days, as `yearly = N` retention counts it."""
