"""Data residency policy (docs/compliance.md#data-residency): mainland China passes,
everything else fails, a missing location is unknown (a warning, never a pass)."""

from __future__ import annotations

import pytest

from medark.errors import UsageError
from medark.policy.residency import (
    COMPLIANT,
    NON_COMPLIANT,
    UNKNOWN,
    SiteLocation,
    residency,
)

RULE = "(docs/compliance.md#data-residency)"


@pytest.mark.parametrize("code", ["CN", "CN-SC", "cn-bj", "CN-SH", "CN-XZ", " CN-GD "])
def test_mainland_china_is_compliant(code: str) -> None:
    verdict = residency(SiteLocation.parse(code))
    assert verdict.verdict == COMPLIANT and verdict.compliant
    assert "mainland China" in verdict.reason and RULE in verdict.reason


@pytest.mark.parametrize(("code", "region"), [
    ("HK", "Hong Kong"), ("CN-HK", "Hong Kong"), ("MO", "Macao"), ("CN-MO", "Macao"),
    ("TW", "Taiwan"), ("CN-TW", "Taiwan"),
])
def test_hong_kong_macao_and_taiwan_are_outside_mainland_china(code: str, region: str) -> None:
    verdict = residency(SiteLocation.parse(code))
    assert verdict.verdict == NON_COMPLIANT and not verdict.compliant
    assert region in verdict.reason
    assert verdict.reason.endswith(f"outside mainland China: non-compliant {RULE}")


@pytest.mark.parametrize("code", ["US", "SG", "DE-BY", "JP-13", "us-ca"])
def test_other_countries_are_non_compliant(code: str) -> None:
    verdict = residency(SiteLocation.parse(code))
    assert verdict.verdict == NON_COMPLIANT
    assert verdict.reason == f"{code.upper()} is outside mainland China: non-compliant {RULE}"


def test_no_location_is_unknown_not_a_pass() -> None:
    verdict = residency(None)
    assert verdict.verdict == UNKNOWN and not verdict.compliant
    assert "no location recorded" in verdict.reason
    assert verdict.public() == {"verdict": UNKNOWN, "reason": verdict.reason}


def test_an_unrecognised_cn_subdivision_is_unknown() -> None:
    # parse refuses it; a location built some other way must not pass by accident
    verdict = residency(SiteLocation("CN", "XG"))
    assert verdict.verdict == UNKNOWN


@pytest.mark.parametrize("code", ["", "C", "CHN", "CN_SC", "CN-", "CN-SICH", "中国", "CN-XG"])
def test_malformed_codes_are_refused(code: str) -> None:
    with pytest.raises(UsageError):
        SiteLocation.parse(code)


def test_site_name_is_normalised_and_the_record_round_trips() -> None:
    loc = SiteLocation.parse("cn-sc", "  West China\tHospital  DR room ")
    assert (loc.code, loc.site) == ("CN-SC", "West China Hospital DR room")
    assert loc.describe() == "CN-SC (West China Hospital DR room)"
    doc = loc.to_doc()
    assert doc == {"code": "CN-SC", "country": "CN", "subdivision": "SC",
                   "site": "West China Hospital DR room"}
    assert SiteLocation.from_doc(doc) == loc
    assert SiteLocation.parse("US", "   ").site is None
    with pytest.raises(UsageError):
        SiteLocation.parse("CN", "x" * 201)


@pytest.mark.parametrize("doc", [None, "CN", {}, {"code": 5}, {"code": "CN-??"}])
def test_an_unreadable_record_counts_as_no_location(doc: object) -> None:
    assert SiteLocation.from_doc(doc) is None
