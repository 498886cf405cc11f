"""The monthly report as HTML and PDF, in Chinese (default) or English: Jinja2 for the
page, matplotlib for the charts (inline SVG whose text is drawn as outlines, so Chinese
renders wherever the file is opened), WeasyPrint for the PDF, both with the Chinese font
report_fonts.py found (fonts-noto-cjk, which `make run` and `make test` install)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib import font_manager

from medark.policy.compliance_text import span
from medark.service.report_data import PeriodReport
from medark.service.report_fonts import CjkFont
from medark.util.files import atomic_write
from medark.util.sizes import format_bytes

CJK_FONTS = ["Noto Sans CJK SC", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "DejaVu Sans"]

TEXT = {
    "zh": {
        "title": "数据安全分析月报", "title_quarterly": "网络安全分析季报",
        "dr": "容灾与安全事件",
        "dr_note": "应用级容灾切换演练：Medark 尚未提供，本季度无实测切换时间（未覆盖）。",
        "events": "安全事件", "failed_tests": "恢复演练失败",
        "period": "统计周期", "generated": "生成时间",
        "profile": "评价标准", "summary": "备份概况", "system": "系统",
        "backups": "备份次数", "success_rate": "成功率", "failed": "失败",
        "worst_rpo": "最差 RPO", "added": "新增数据", "rpo_chart": "各系统实际 RPO（小时）",
        "rpo_chart_min": "各系统实际 RPO（分钟）",
        "restore_tests": "恢复演练与 RTO", "time": "时间", "status": "结果", "rto": "RTO",
        "restored_from": "恢复来源",
        "none": "无", "storage": "存储增长与重复数据删除", "repository": "存储库",
        "site": "站点", "raw": "受保护数据量", "stored": "实际占用",
        "dedup": "去重压缩比",
        "growth_chart": "每日新增备份数据（MiB）", "offsite": "异地复制",
        "copies": "复制次数", "copy_gap": "最长复制间隔", "suspicious": "疑似勒索软件快照",
        "alerts": "告警", "opened": "发生", "resolved": "恢复", "open": "未恢复",
        "compliance": "合规评估", "requirement": "要求", "must": "必须", "rec": "推荐",
        "design": "设计", "measured": "实测", "colon": "：",
        "status_text": {"pass": "通过", "warn": "警告", "fail": "不通过",
                        "not covered": "未覆盖", "n/a": "不适用",
                        "succeeded": "成功", "failed": "失败"},
    },
    "en": {
        "title": "Monthly data-security analysis report",
        "title_quarterly": "Quarterly network-security analysis report",
        "dr": "DR and security events",
        "dr_note": "Application-level DR switch-over drills: not provided by Medark yet; no "
                   "switch time was measured this quarter (not covered).",
        "events": "Security events", "failed_tests": "Failed restore tests",
        "period": "Period",
        "generated": "Generated", "profile": "Profile", "summary": "Backups",
        "system": "System", "backups": "Backups", "success_rate": "Success rate",
        "failed": "Failed", "worst_rpo": "Worst RPO", "added": "Data added",
        "rpo_chart": "Achieved RPO per system (hours)",
        "rpo_chart_min": "Achieved RPO per system (minutes)",
        "restore_tests": "Restore tests and RTO", "time": "Time", "status": "Result",
        "restored_from": "Restored from",
        "rto": "RTO", "none": "none", "storage": "Storage growth and deduplication",
        "repository": "Repository", "site": "Site", "raw": "Data protected",
        "stored": "Stored", "dedup": "Protected / stored",
        "growth_chart": "Backup data added per day (MiB)", "offsite": "Offsite copies",
        "copies": "Copies", "copy_gap": "Longest gap", "suspicious": "Suspicious snapshots",
        "alerts": "Alerts", "opened": "Opened", "resolved": "Resolved", "open": "open",
        "compliance": "Compliance", "requirement": "Requirement", "must": "must",
        "rec": "recommended", "design": "Design", "measured": "Measured", "colon": ": ",
        "status_text": {"pass": "pass", "warn": "warn", "fail": "fail",
                        "not covered": "not covered", "n/a": "n/a",
                        "succeeded": "succeeded", "failed": "failed"},
    },
}


def render_html(report: PeriodReport, font: CjkFont, language: str = "zh") -> str:
    words = TEXT[language]
    families = [font.family, *(f for f in CJK_FONTS if f != font.family)]
    _use_font(font, families)
    env = Environment(loader=PackageLoader("medark.service", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["bytes"] = lambda n: format_bytes(n) if n is not None else "-"
    env.filters["span"] = lambda seconds: _span(seconds, language)
    env.filters["when"] = lambda t: t.astimezone(report.start.tzinfo).strftime(
        "%Y-%m-%d %H:%M %Z")
    env.filters["pct"] = lambda x: f"{100 * x:.1f}%" if x is not None else "-"
    env.filters["ratio"] = lambda x: f"{x:.2f}×" if x is not None else "-"
    return env.get_template("report.html.j2").render(
        r=report, t=words, lang=language, fonts=_css_families(families),
        names={s.system: s.name for s in report.systems},
        last_day=report.end - timedelta(days=1),
        rpo_chart=_rpo_chart(report, words), growth_chart=_growth_chart(report, words))


def _css_families(families: list[str]) -> str:
    """A CSS font-family list (inside <style>, where HTML escaping would break it: a
    family name keeps only characters that cannot end the string or the element)."""
    clean = ("".join(c for c in f if c not in '"\\<>;{}') for f in families)
    return ", ".join(f'"{f}"' for f in clean if f)


def write_report(report: PeriodReport, out_dir: Path, font: CjkFont,
                 language: str = "zh") -> tuple[Path, Path]:
    """report-YYYY-MM[-en] or report-YYYY-QN[-en], .html and .pdf, in out_dir (each
    written whole, then renamed into place)."""
    from weasyprint import HTML  # heavy: only when a report is made

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"report-{report.label}" + ("" if language == "zh" else f"-{language}")
    html = render_html(report, font, language)
    html_path, pdf_path = out_dir / f"{stem}.html", out_dir / f"{stem}.pdf"
    _replace(html_path, html.encode())
    _replace(pdf_path, HTML(string=html).write_pdf())
    return html_path, pdf_path


def _replace(path: Path, data: bytes | None) -> None:
    atomic_write(path, data or b"", mode=0o640)


def _span(seconds: float | None, language: str) -> str:
    if seconds is None or seconds < 0:
        return "-"
    return span(timedelta(seconds=seconds), language)


def _use_font(font: CjkFont, families: list[str]) -> None:
    """Charts in `font`: its file given to matplotlib directly, whose cached font list
    may predate the font's installation (then every Chinese glyph would be a box)."""
    font_manager.fontManager.addfont(str(font.path))
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["font.sans-serif"] = families
    plt.rcParams["svg.fonttype"] = "path"
    plt.rcParams["axes.unicode_minus"] = False


def _figure() -> tuple[Any, Any]:
    return plt.subplots(figsize=(8, 3.2), dpi=100, layout="constrained")


def _time_axis(ax: Any, report: PeriodReport, first: datetime, last: datetime,
               daily: bool = False) -> None:
    """The x axis over the data's own span (a few days of data fill the width), with
    numeric dates in the hospital's time zone; `daily`: a tick per day or few."""
    tz = report.start.tzinfo
    if daily:
        ax.set_xlim(first, last)
        every = max(1, -(-(last - first).days // 10))
        ax.xaxis.set_major_locator(mdates.DayLocator(  # type: ignore[no-untyped-call]
            interval=every, tz=tz))
        ax.xaxis.set_major_formatter(mdates.DateFormatter(  # type: ignore[no-untyped-call]
            "%m-%d", tz=tz))
        return
    pad = max((last - first) / 50, timedelta(minutes=30))
    ax.set_xlim(first - pad, last + pad)
    locator = mdates.AutoDateLocator(tz=tz, maxticks=10)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
        locator, tz=tz, formats=["%Y", "%m", "%m-%d", "%H:%M", "%H:%M", "%S.%f"],
        offset_formats=["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]))


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _rpo_chart(report: PeriodReport, words: dict[str, Any]) -> str:
    return _svg(rpo_figure(report, words))


def rpo_figure(report: PeriodReport, words: dict[str, Any]) -> Any:
    """Achieved RPO per system over the span that has data, in hours (minutes when every
    value is under two hours); the legend below the plot, where it hides nothing."""
    fig, ax = _figure()
    series = [(system.name, [(t, a) for t, a in system.rpo_series if a >= 0])
              for system in report.systems]
    series = [(name, points) for name, points in series if points]
    ages = [a for _n, points in series for _t, a in points]
    unit, title = (60, words["rpo_chart_min"]) if ages and max(ages) < 7200 else \
        (3600, words["rpo_chart"])
    for name, points in series:
        ax.step([t for t, _a in points], [a / unit for _t, a in points], where="post",
                marker="." if len(points) < 3 else None, label=name)
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if series:
        times = [t for _n, points in series for t, _a in points]
        _time_axis(ax, report, min(times), max(times))
        fig.legend(loc="outside lower center", ncols=min(len(series), 4), fontsize=8,
                   frameon=False)
    else:
        ax.set_xlim(report.start, report.end)
        ax.text(0.5, 0.5, words["none"], transform=ax.transAxes, ha="center")
    return fig


def _growth_chart(report: PeriodReport, words: dict[str, Any]) -> str:
    fig, ax = _figure()
    tz = report.start.tzinfo
    days = [datetime(d.year, d.month, d.day, 12, tzinfo=tz) for d, _n in report.growth]
    ax.bar(days, [n / 2**20 for _d, n in report.growth], width=0.8, color="#3b7dd8")
    ax.set_title(words["growth_chart"])
    if days:
        _time_axis(ax, report, min(days) - timedelta(hours=12),
                   max(days) + timedelta(hours=12), daily=True)
    else:
        ax.set_xlim(report.start, report.end)
        ax.text(0.5, 0.5, words["none"], transform=ax.transAxes, ha="center")
    ax.grid(alpha=0.3, axis="y")
    return _svg(fig)
