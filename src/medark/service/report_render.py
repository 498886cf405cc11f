"""The monthly report as HTML and PDF, in Chinese (default) or English: Jinja2 for the
page, matplotlib for the charts (inline SVG whose text is drawn as outlines, so Chinese
renders wherever the file is opened), WeasyPrint for the PDF with the Noto CJK fonts the
project's setup installs (fonts-noto-cjk)."""

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

from medark.config.durations import format_config_duration
from medark.service.report_data import PeriodReport
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
        "restore_tests": "恢复演练与 RTO", "time": "时间", "status": "结果", "rto": "RTO",
        "restored_from": "恢复来源",
        "none": "无", "storage": "存储增长与重复数据删除", "repository": "存储库",
        "site": "站点", "raw": "受保护数据量", "stored": "实际占用",
        "dedup": "去重压缩比",
        "growth_chart": "每日新增备份数据（MB）", "offsite": "异地复制",
        "copies": "复制次数", "copy_gap": "最长复制间隔", "suspicious": "疑似勒索软件快照",
        "alerts": "告警", "opened": "发生", "resolved": "恢复", "open": "未恢复",
        "compliance": "合规评估", "requirement": "要求", "must": "必须", "rec": "推荐",
        "design": "设计", "measured": "实测",
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
        "restore_tests": "Restore tests and RTO", "time": "Time", "status": "Result",
        "restored_from": "Restored from",
        "rto": "RTO", "none": "none", "storage": "Storage growth and deduplication",
        "repository": "Repository", "site": "Site", "raw": "Data protected",
        "stored": "Stored", "dedup": "Protected / stored",
        "growth_chart": "Backup data added per day (MB)", "offsite": "Offsite copies",
        "copies": "Copies", "copy_gap": "Longest gap", "suspicious": "Suspicious snapshots",
        "alerts": "Alerts", "opened": "Opened", "resolved": "Resolved", "open": "open",
        "compliance": "Compliance", "requirement": "Requirement", "must": "must",
        "rec": "recommended", "design": "Design", "measured": "Measured",
        "status_text": {"pass": "pass", "warn": "warn", "fail": "fail",
                        "not covered": "not covered", "n/a": "n/a",
                        "succeeded": "succeeded", "failed": "failed"},
    },
}


def render_html(report: PeriodReport, language: str = "zh") -> str:
    words = TEXT[language]
    env = Environment(loader=PackageLoader("medark.service", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["bytes"] = lambda n: format_bytes(n) if n is not None else "-"
    env.filters["span"] = _span
    env.filters["when"] = lambda t: t.astimezone(report.start.tzinfo).strftime(
        "%Y-%m-%d %H:%M %Z")
    env.filters["pct"] = lambda x: f"{100 * x:.1f}%" if x is not None else "-"
    env.filters["ratio"] = lambda x: f"{x:.2f}×" if x is not None else "-"
    return env.get_template("report.html.j2").render(
        r=report, t=words, lang=language, fonts=", ".join(f'"{f}"' for f in CJK_FONTS),
        rpo_chart=_rpo_chart(report, words), growth_chart=_growth_chart(report, words))


def write_report(report: PeriodReport, out_dir: Path, language: str = "zh") -> tuple[Path, Path]:
    """report-YYYY-MM[-en] or report-YYYY-QN[-en], .html and .pdf, in out_dir (each
    written whole, then renamed into place)."""
    from weasyprint import HTML  # heavy: only when a report is made

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"report-{report.label}" + ("" if language == "zh" else f"-{language}")
    html = render_html(report, language)
    html_path, pdf_path = out_dir / f"{stem}.html", out_dir / f"{stem}.pdf"
    _replace(html_path, html.encode())
    _replace(pdf_path, HTML(string=html).write_pdf())
    return html_path, pdf_path


def _replace(path: Path, data: bytes | None) -> None:
    atomic_write(path, data or b"", mode=0o640)


def _span(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_config_duration(timedelta(seconds=round(seconds)))


def _figure() -> tuple[Any, Any]:
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["font.sans-serif"] = CJK_FONTS
    plt.rcParams["svg.fonttype"] = "path"
    plt.rcParams["axes.unicode_minus"] = False
    return plt.subplots(figsize=(8, 3.2), dpi=100)


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _rpo_chart(report: PeriodReport, words: dict[str, Any]) -> str:
    fig, ax = _figure()
    plotted = False
    for system in report.systems:
        points = [(t, a / 3600) for t, a in system.rpo_series if a >= 0]
        if points:
            ax.step([p[0] for p in points], [p[1] for p in points], where="post",
                    marker="." if len(points) < 3 else None, label=system.name)
            plotted = True
    ax.set_title(words["rpo_chart"])
    ax.set_xlim(report.start, report.end)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, words["none"], transform=ax.transAxes, ha="center")
    return _svg(fig)


def _growth_chart(report: PeriodReport, words: dict[str, Any]) -> str:
    fig, ax = _figure()
    days = [datetime(d.year, d.month, d.day) for d, _n in report.growth]
    ax.bar(days, [n / 1e6 for _d, n in report.growth], color="#3b7dd8")
    ax.set_title(words["growth_chart"])
    ax.set_xlim(report.start, report.end)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    ax.grid(alpha=0.3, axis="y")
    return _svg(fig)
