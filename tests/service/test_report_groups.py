"""A restore test of a consistency group shows its check in the monthly report: the
references, the index rows without files, the files without rows and, when some objects
lie on storages the group does not map, how many and where (job details as
scheduler/restore_group.py writes them)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

pytest.importorskip("matplotlib")

from medark.service.report_data import GroupCheck, PeriodReport, SystemMonth
from medark.service.report_fonts import cjk_font
from medark.service.report_render import render_html

STEPS = [
    {"snapshot": "ab12", "files": 3, "bytes": 10},  # a plain restore: no check
    {"restore": "group", "group": "pacs", "point": "cd34",
     "check": {"references": 1200, "files": 1200, "rows_without_files": 0,
               "files_without_rows": 2, "not_covered": 7,
               "not_covered_by_storage": {"nearline": 5, "tape": 2}}},
    {"restore": "group", "group": "ris", "check": {"references": 40, "files": 40,
                                                   "rows_without_files": 0,
                                                   "files_without_rows": 0}},
]


def _report() -> PeriodReport:
    when = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    month = SystemMonth("pacs", "PACS 影像归档")
    month.restore_tests = [(when, "succeeded", 84.0, "local",
                            GroupCheck.of_steps(STEPS))]
    return PeriodReport(kind="monthly", label="2026-12", hospital="示例县人民医院",
                        month=date(2026, 12, 1), start=datetime(2026, 12, 1, tzinfo=UTC),
                        end=datetime(2027, 1, 1, tzinfo=UTC), generated=when,
                        systems=[month], growth=[], repositories=[], suspicious=[],
                        alerts=[], verdicts=[], profile="三乙 / 等保 2")


def test_group_checks_are_read_from_the_steps() -> None:
    pacs, ris = GroupCheck.of_steps(STEPS)
    assert (pacs.group, pacs.references, pacs.files_without_rows, pacs.not_covered) == (
        "pacs", 1200, 2, 7)
    assert pacs.not_covered_by_storage == {"nearline": 5, "tape": 2}
    assert (ris.group, ris.not_covered, ris.not_covered_by_storage) == ("ris", 0, {})
    assert GroupCheck.of_steps(None) == [] and GroupCheck.of_steps([{"check": 1}]) == []
    assert GroupCheck.of_steps(["a step of another shape", 3]) == []


@pytest.mark.parametrize(("language", "pacs", "ris"), [
    ("en", "group pacs: 1200 files referenced by the index, 0 index rows without a file, "
           "2 files without an index row; 7 objects on storages the group does not map "
           "(nearline: 5, tape: 2), not part of the point",
     "group ris: 40 files referenced by the index, 0 index rows without a file, 0 files "
     "without an index row</span>"),
    ("zh", "一致性组 pacs：索引引用 1200 个文件，0 条索引行缺少文件，2 个文件无索引行；"
           "7 个对象位于本组未映射的存储上（nearline: 5, tape: 2），不在恢复点内",
     "一致性组 ris：索引引用 40 个文件，0 条索引行缺少文件，0 个文件无索引行</span>"),
])
def test_the_report_shows_each_groups_check(language: str, pacs: str, ris: str) -> None:
    html = render_html(_report(), cjk_font(), language)
    assert pacs in html and ris in html
