"""The file names of the server's report downloads (server/reports.py): the hospital's
name as given, Chinese included, without what a file system or a header cannot take;
an ASCII fallback for clients without RFC 6266's filename*."""

from __future__ import annotations

from datetime import UTC, datetime

from medark.server.reports import ReportInfo, ascii_name, file_name


def test_the_download_is_named_after_the_hospital() -> None:
    assert (file_name("示例县人民医院", "monthly", "2026-11", "zh")
            == "示例县人民医院-2026-11-月度报告.pdf")
    assert (file_name("示例县人民医院", "quarterly", "2026-Q4", "zh")
            == "示例县人民医院-2026-Q4-季度报告.pdf")
    assert (file_name("County Hospital", "quarterly", "2026-Q4", "en")
            == "County Hospital-2026-Q4-quarterly-report.pdf")


def test_what_a_file_name_cannot_hold_is_left_out() -> None:
    assert (file_name('a/b\\c:"d"\r\n<e>|f?*\u202e', "monthly", "2026-11", "zh")
            == "abcdef-2026-11-月度报告.pdf")
    assert file_name("  ..  ", "monthly", "2026-11", "en") == "medark-2026-11-monthly-report.pdf"
    assert file_name("医" * 500, "monthly", "2026-11", "zh").startswith("医" * 120 + "-2026-11")


def test_the_fallback_name_is_ascii() -> None:
    info = ReportInfo(7, "county-a", "quarterly", "2026-Q4", "en", "done", 1, "x.pdf", 1,
                      "0" * 64, "admin", datetime(2026, 12, 1, tzinfo=UTC), None, None, None)
    assert ascii_name(info) == "report-county-a-2026-Q4-en.pdf"
