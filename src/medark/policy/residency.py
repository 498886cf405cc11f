"""Data residency (docs/compliance.md#data-residency): medical data must not be stored outside
mainland China.

Pure (docs/architecture.md, conventions 7 and 8). A storage target carries a
`SiteLocation`: an ISO 3166-1 alpha-2 country code, optionally an ISO 3166-2 subdivision
code (``CN-SC`` = Sichuan), and an optional free-text site name. `residency()` returns
the verdict and the reason:

* ``compliant``: ``CN`` or a mainland subdivision ``CN-xx``;
* ``non-compliant``: anything else, including Hong Kong, Macao and Taiwan however they
  are written (``HK``/``CN-HK``, ``MO``/``CN-MO``, ``TW``/``CN-TW``): they are outside
  mainland China for this rule;
* ``unknown``: no location recorded: a warning, never a pass.

A repository records its location once, at ``medark init --location`` (the sealed
config's ``extra.location``, never rewritten). The compliance engine applies the same
function to the sites of its configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from medark.errors import UsageError

COMPLIANT = "compliant"
NON_COMPLIANT = "non-compliant"
UNKNOWN = "unknown"
RULE = "docs/compliance.md#data-residency"

CONFIG_KEY = "location"
"""Where a repository's location lives in its sealed config (`RepoConfig.extra`)."""

CN_SUBDIVISIONS: dict[str, str] = {
    "AH": "Anhui", "BJ": "Beijing", "CQ": "Chongqing", "FJ": "Fujian", "GD": "Guangdong",
    "GS": "Gansu", "GX": "Guangxi", "GZ": "Guizhou", "HA": "Henan", "HB": "Hubei",
    "HE": "Hebei", "HI": "Hainan", "HK": "Hong Kong", "HL": "Heilongjiang", "HN": "Hunan",
    "JL": "Jilin", "JS": "Jiangsu", "JX": "Jiangxi", "LN": "Liaoning", "MO": "Macao",
    "NM": "Inner Mongolia", "NX": "Ningxia", "QH": "Qinghai", "SC": "Sichuan",
    "SD": "Shandong", "SH": "Shanghai", "SN": "Shaanxi", "SX": "Shanxi", "TJ": "Tianjin",
    "TW": "Taiwan", "XJ": "Xinjiang", "XZ": "Tibet", "YN": "Yunnan", "ZJ": "Zhejiang",
}
"""ISO 3166-2:CN (the letter codes in use since 2017)."""

OUTSIDE_MAINLAND = {"HK": "Hong Kong", "MO": "Macao", "TW": "Taiwan"}
"""Parts of CN's ISO 3166-2 list (and countries of their own in ISO 3166-1) that are not
mainland China."""

SITE_MAX = 200
_CODE = re.compile(r"([A-Z]{2})(?:-([A-Z0-9]{1,3}))?")


@dataclass(frozen=True)
class SiteLocation:
    country: str
    """ISO 3166-1 alpha-2, upper case."""
    subdivision: str | None = None
    """ISO 3166-2 code without the country (``SC`` of ``CN-SC``)."""
    site: str | None = None
    """Free text: the building, campus or data center."""

    @classmethod
    def parse(cls, code: str, site: str | None = None) -> SiteLocation:
        """``CN``, ``CN-SC``, ``us``, ``DE-BY``; CN subdivisions must be ISO 3166-2:CN codes
        (the verdict depends on them), other countries' are checked for form only."""
        text = code.strip().upper()
        match = _CODE.fullmatch(text)
        if match is None:
            raise UsageError(
                f"location {code!r}: give an ISO 3166 code such as CN, CN-SC or US "
                "(country, optionally a dash and the subdivision)")
        country, subdivision = match.group(1), match.group(2)
        if country == "CN" and subdivision is not None and subdivision not in CN_SUBDIVISIONS:
            raise UsageError(
                f"location {code!r}: CN-{subdivision} is not an ISO 3166-2:CN code; use one "
                f"of {', '.join('CN-' + s for s in sorted(CN_SUBDIVISIONS))}")
        if site is not None:
            site = " ".join(site.split())
            if not site:
                site = None
            elif len(site) > SITE_MAX:
                raise UsageError(f"site name: at most {SITE_MAX} characters")
        return cls(country, subdivision, site)

    @property
    def code(self) -> str:
        return self.country if self.subdivision is None else f"{self.country}-{self.subdivision}"

    def describe(self) -> str:
        """``CN-SC (Chengdu campus)``."""
        return self.code if self.site is None else f"{self.code} ({self.site})"

    def to_doc(self) -> dict[str, Any]:
        return {"code": self.code, "country": self.country,
                "subdivision": self.subdivision, "site": self.site}

    @classmethod
    def from_doc(cls, doc: object) -> SiteLocation | None:
        """The location recorded in a config (None: none, or not one Medark can read)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("code"), str):
            return None
        site = doc.get("site")
        try:
            return cls.parse(doc["code"], site if isinstance(site, str) else None)
        except UsageError:
            return None


@dataclass(frozen=True)
class Residency:
    """The verdict for one location, and why."""

    verdict: str
    reason: str
    location: SiteLocation | None = None

    @property
    def compliant(self) -> bool:
        return self.verdict == COMPLIANT

    def public(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason}


def region_name(location: SiteLocation) -> str | None:
    """Hong Kong, Macao or Taiwan when the code names one, else None."""
    if location.country in OUTSIDE_MAINLAND:
        return OUTSIDE_MAINLAND[location.country]
    if location.country == "CN" and location.subdivision in OUTSIDE_MAINLAND:
        return OUTSIDE_MAINLAND[location.subdivision]
    return None


def residency(location: SiteLocation | None) -> Residency:
    """Is data stored at `location` inside mainland China?"""
    if location is None:
        return Residency(UNKNOWN, "no location recorded (it is set at `medark init "
                                  f"--location`; {RULE})")
    code = location.code
    special = region_name(location)
    if special is not None:
        return Residency(NON_COMPLIANT, f"{code} ({special}) is outside mainland China: "
                                        f"non-compliant ({RULE})", location)
    if location.country != "CN":
        return Residency(NON_COMPLIANT,
                         f"{code} is outside mainland China: non-compliant ({RULE})", location)
    if location.subdivision is not None and location.subdivision not in CN_SUBDIVISIONS:
        return Residency(UNKNOWN, f"{code} is not an ISO 3166-2:CN subdivision: residency "
                                  f"unknown ({RULE})", location)
    return Residency(COMPLIANT, f"{code} is in mainland China ({RULE})", location)
