"""The RPO chart of the monthly report, drawn by matplotlib as the report draws it: a
few days of data fill the width (not a month-wide axis), and the legend lies outside
the plot, hiding no line."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("matplotlib")

from medark.service.report_data import PeriodReport, SystemMonth
from medark.service.report_fonts import cjk_font
from medark.service.report_render import TEXT, _use_font, rpo_figure

TZ = ZoneInfo("Asia/Shanghai")


def _report(days: int) -> PeriodReport:
    start = datetime(2026, 12, 1, tzinfo=TZ)
    first = start + timedelta(days=20)
    systems = []
    for name, every in (("HIS 医院信息系统", 6), ("PACS 影像归档", 9)):
        month = SystemMonth(name, name)
        month.rpo_series = [(start + timedelta(hours=h), -1.0) for h in range(20 * 24)]
        month.rpo_series += [(first + timedelta(hours=h), (h % every) * 3600.0)
                             for h in range(days * 24)]
        systems.append(month)
    return PeriodReport(kind="monthly", label="2026-12", hospital="示例县人民医院",
                        month=date(2026, 12, 1), start=start,
                        end=datetime(2027, 1, 1, tzinfo=TZ), generated=first,
                        systems=systems, growth=[], repositories=[], suspicious=[],
                        alerts=[], verdicts=[], profile="三乙 / 等保 2")


def test_a_few_days_fill_the_axis_and_the_legend_hides_nothing() -> None:
    from matplotlib import dates

    _use_font(cjk_font(), ["Noto Sans CJK SC"])
    fig = rpo_figure(_report(days=3), TEXT["zh"])
    fig.canvas.draw()
    (ax,) = fig.axes
    left, right = (dates.num2date(x) for x in ax.get_xlim())
    assert timedelta(days=3) <= right - left < timedelta(days=3, hours=6)
    (legend,) = fig.legends
    plot = ax.get_window_extent()
    box = legend.get_window_extent()
    assert box.y1 <= plot.y0 or box.x0 >= plot.x1, (box, plot)  # below or beside it
    assert [t.get_text() for t in legend.get_texts()] == ["HIS 医院信息系统", "PACS 影像归档"]
