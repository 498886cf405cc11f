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
        "dr_note": "本季度的容灾演练与切换（含切换时间与数据丢失）见第 3 节，登录失败与跨机构"
                   "访问见第 8 节；安全事件如下。",
        "dr_actions": "容灾演练与切换", "action": "操作", "switch_time": "切换时间",
        "held": "写入暂停", "data_loss": "数据丢失",
        "dr_actions_note": "切换时间：演练为容灾端服务恢复健康所用的时间；切换为从暂停客户端"
                           "（或停止主站点服务）到容灾站点服务健康检查通过的时间。写入暂停：数据库"
                           "切换期间写入被挂起的时间。",
        "dr_kind": {"drill": "演练", "switchover": "计划切换", "failover": "故障切换",
                    "failback": "回切"},
        "loss": "{bytes}（{commits} 个事务）未到达备用库", "loss_bytes": "{bytes} 未到达备用库",
        "loss_none": "无", "loss_unknown": "未知：旧主库无法读取",
        "events": "安全事件", "failed_tests": "恢复演练失败",
        "period": "统计周期", "generated": "生成时间",
        "profile": "评价标准", "summary": "备份概况", "system": "系统",
        "backups": "备份次数", "success_rate": "成功率", "failed": "失败",
        "worst_rpo": "最差 RPO", "added": "新增数据", "rpo_chart": "各系统实际 RPO（小时）",
        "rpo_chart_min": "各系统实际 RPO（分钟）",
        "restore_tests": "恢复演练与 RTO", "time": "时间", "status": "结果", "rto": "RTO",
        "restored_from": "恢复来源",
        "group_check": "一致性组 {group}：索引引用 {references} 个文件，{rows} 条索引行缺少文件，"
                       "{files} 个文件无索引行",
        "group_not_covered": "；{n} 个对象位于本组未映射的存储上（{storages}），不在恢复点内",
        "none": "无", "storage": "存储增长与重复数据删除", "repository": "存储库",
        "site": "站点", "raw": "受保护数据量", "stored": "实际占用",
        "dedup": "去重压缩比",
        "growth_chart": "每日新增备份数据（MiB）", "offsite": "异地复制",
        "copies": "复制次数", "copy_gap": "最长复制间隔", "suspicious": "疑似勒索软件快照",
        "alerts": "告警", "opened": "发生", "resolved": "恢复", "open": "未恢复",
        "access": "访问与操作审计",
        "access_source": "来源：审计日志，本周期 {n} 条记录。",
        "access_empty": "本周期审计日志中没有记录（管理服务器未运行，或报告读取的"
                        " catalog 不是服务器所用的）。",
        "grants": "跨机构数据共享", "grant": "授权", "from_to": "申请方 → 数据所属方",
        "no_grant": "无授权", "object": "对象",
        "purpose": "用途", "uses": "使用次数", "refused": "拒绝次数", "last": "最近",
        "first": "首次", "grant_events": "授权申请、审批、到期与拒绝",
        "failed_logins": "登录失败与锁定", "source": "来源地址", "account": "账户",
        "failures": "失败次数", "lockouts": "锁定次数", "admin": "管理员操作",
        "actor": "操作人", "count": "次数", "target": "对象", "detail": "详情",
        "admin_note": "管理员操作：账户、凭据（口令、TOTP、API 令牌）、机构、代理与配置的变更，"
                      "授权的审批，审计日志的导出与核验。",
        "more": "仅列出前 {shown} 条，共 {total} 条；全部记录可用 medark audit export 导出。",
        "result_text": {"ok": "成功", "denied": "拒绝", "failed": "失败"},
        "compliance": "合规评估", "requirement": "要求", "must": "必须", "rec": "推荐",
        "design": "设计", "measured": "实测", "colon": "：",
        "status_text": {"pass": "通过", "warn": "警告", "fail": "不通过",
                        "not covered": "未覆盖", "n/a": "不适用",
                        "succeeded": "成功", "failed": "失败", "rolled_back": "已回滚"},
    },
    "en": {
        "title": "Monthly data-security analysis report",
        "title_quarterly": "Quarterly network-security analysis report",
        "dr": "DR and security events",
        "dr_note": "This quarter's DR drills and switches, with their switch times and data "
                   "loss, are listed in section 3, failed logins and cross-institution "
                   "access in section 8; the security events follow.",
        "dr_actions": "DR drills and switches", "action": "Action",
        "switch_time": "Switch time", "held": "Writes held", "data_loss": "Data loss",
        "dr_actions_note": "Switch time: for a drill, the time until the DR side's services "
                           "were healthy; for a switch, from holding the clients (or stopping "
                           "the primary site's services) until the DR site's health checks "
                           "passed. Writes held: how long writes waited during the database "
                           "switch.",
        "dr_kind": {"drill": "drill", "switchover": "switch-over", "failover": "failover",
                    "failback": "failback"},
        "loss": "{bytes} ({commits} commits) not on the standby",
        "loss_bytes": "{bytes} not on the standby", "loss_none": "none",
        "loss_unknown": "unknown: the old primary could not be read",
        "events": "Security events", "failed_tests": "Failed restore tests",
        "period": "Period",
        "generated": "Generated", "profile": "Profile", "summary": "Backups",
        "system": "System", "backups": "Backups", "success_rate": "Success rate",
        "failed": "Failed", "worst_rpo": "Worst RPO", "added": "Data added",
        "rpo_chart": "Achieved RPO per system (hours)",
        "rpo_chart_min": "Achieved RPO per system (minutes)",
        "restore_tests": "Restore tests and RTO", "time": "Time", "status": "Result",
        "restored_from": "Restored from",
        "group_check": "group {group}: {references} files referenced by the index, {rows} "
                       "index rows without a file, {files} files without an index row",
        "group_not_covered": "; {n} objects on storages the group does not map "
                             "({storages}), not part of the point",
        "rto": "RTO", "none": "none", "storage": "Storage growth and deduplication",
        "repository": "Repository", "site": "Site", "raw": "Data protected",
        "stored": "Stored", "dedup": "Protected / stored",
        "growth_chart": "Backup data added per day (MiB)", "offsite": "Offsite copies",
        "copies": "Copies", "copy_gap": "Longest gap", "suspicious": "Suspicious snapshots",
        "alerts": "Alerts", "opened": "Opened", "resolved": "Resolved", "open": "open",
        "access": "Access and administration audit",
        "access_source": "From the audit trail: {n} records in the period.",
        "access_empty": "The audit trail has no records for this period (no management "
                        "server ran, or this is not the server's catalog).",
        "grants": "Cross-institution data sharing", "grant": "Grant",
        "from_to": "Requester → data owner", "no_grant": "none", "object": "Object",
        "purpose": "Purpose", "uses": "Uses", "refused": "Refused",
        "last": "Last", "first": "First",
        "grant_events": "Grant requests, decisions, expiries and refusals",
        "failed_logins": "Failed logins and lockouts", "source": "Address",
        "account": "Account", "failures": "Failures", "lockouts": "Lockouts",
        "admin": "Administrators' actions", "actor": "Actor", "count": "Actions",
        "target": "Object", "detail": "Detail",
        "admin_note": "Administrators' actions: changes to accounts, credentials (passwords, "
                      "TOTP, API tokens), institutions, agents and the configuration, grant "
                      "decisions, exporting and verifying the audit trail.",
        "more": "The first {shown} of {total} are listed; medark audit export gives them all.",
        "result_text": {"ok": "ok", "denied": "denied", "failed": "failed"},
        "compliance": "Compliance", "requirement": "Requirement", "must": "must",
        "rec": "recommended", "design": "Design", "measured": "Measured", "colon": ": ",
        "status_text": {"pass": "pass", "warn": "warn", "fail": "fail",
                        "not covered": "not covered", "n/a": "n/a",
                        "succeeded": "succeeded", "failed": "failed",
                        "rolled_back": "rolled back"},
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
    env.filters["loss"] = lambda loss: data_loss_text(loss, words)
    return env.get_template("report.html.j2").render(
        r=report, t=words, lang=language, fonts=_css_families(families),
        names={s.system: s.name for s in report.systems},
        last_day=report.end - timedelta(days=1),
        rpo_chart=_rpo_chart(report, words), growth_chart=_growth_chart(report, words))


def data_loss_text(loss: dict[str, Any] | None, words: dict[str, Any]) -> str:
    """A failover's data-loss window in the report's words; "-" when none was recorded
    (a drill, or a switch-over, which holds writes until the standby has them all)."""
    if loss is None:
        return "-"
    lost, commits = loss.get("bytes"), loss.get("commits")
    if not isinstance(lost, int):
        return str(words["loss_unknown"])
    if lost == 0:
        return str(words["loss_none"])
    if isinstance(commits, int):
        return str(words["loss"]).format(bytes=format_bytes(lost), commits=commits)
    return str(words["loss_bytes"]).format(bytes=format_bytes(lost))


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
        _time_axis(ax, report, report.start, report.end, daily=True)  # readable ticks
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
        _time_axis(ax, report, report.start, report.end, daily=True)  # readable ticks
        ax.set_ylim(0, 1)  # no bars: an axis around 0 would show negative MiB
        ax.text(0.5, 0.5, words["none"], transform=ax.transAxes, ha="center")
    ax.grid(alpha=0.3, axis="y")
    return _svg(fig)
