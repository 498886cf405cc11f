"""The words of a compliance verdict in Chinese and English, in one place: requirement
titles by requirement id, evidence by template key. Reports are Chinese by default and
`medark compliance --lang` prints either, so a check records a template and its values
(policy/compliance.py), and the text is made here in the language asked for.

Pure: tables and formatting only. A custom requirement's title is the configuration's
own words and is never translated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from medark.config.durations import UNITS, format_config_duration
from medark.policy.compliance_dbaudit import EVIDENCE as DBAUDIT_EVIDENCE
from medark.policy.compliance_dbaudit import TITLE_ZH as DBAUDIT_TITLE_ZH
from medark.policy.compliance_netconfig import EVIDENCE as NETCONFIG_EVIDENCE
from medark.policy.compliance_profiles import Requirement
from medark.policy.residency import (
    CN_SUBDIVISIONS,
    NON_COMPLIANT,
    RULE,
    UNKNOWN,
    Residency,
    region_name,
)

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Phrase:
    """A term inside an evidence template (what was measured), translated with it."""

    key: str


@dataclass(frozen=True)
class Parts:
    """Several evidence templates shown as one (the local retention, then each copy
    target's), each filled in the language and joined by its separator."""

    items: tuple[tuple[str, Mapping[str, object]], ...]


EVIDENCE: dict[str, dict[str, str]] = {
    "en": {
        "within.none": "no {what}",
        "within.value": "{what} {value}",
        "within.over": "{what} {value} > {limit}",
        "within.ok": "{what} {value} ≤ {limit}",
        "not_built.dr": "application-level DR (standby) is not built yet",
        "not_built.hot": "hot redundancy (warm standby) is not built yet",
        "not_built.devices": "network device configuration backup is not built yet",
        "not_covered": "not covered",
        "no_restore_test": "no restore test scheduled: the RTO is never measured",
        "no_offsite": "no copy to another site",
        "no_offsite_copy": "no offsite copy",
        "no_offsite_test": "no restore test from the offsite copy scheduled "
                           "(offsite_restore_test)",
        "plans": "plans {plans}",
        "no_plan": "no plan protects it",
        "copy_every": "copy every {gap}",
        "continuous_copy": "continuous copy",
        "realtime": "continuous copy (copy --follow)",
        "no_realtime": "no continuous copy to another site",
        "no_realtime_copy": "no continuous copy",
        "no_records": "holds no medical records",
        "retention.short": "retention reaches {reach} < {minimum}",
        "retention.reach": "retention reaches {reach}",
        "retention.unapplied": "retention has not been applied (no forget ran)",
        "retention.applied": "retention applied {ago} ago; yearly record points are kept "
                             "by policy",
        "retention.copy.short": "at {target}: retention reaches {reach} < {minimum}",
        "retention.copy.reach": "at {target}: retention reaches {reach}",
        "retention.copy_unapplied": "at {target}: retention has not been applied (no "
                                    "forget:{target} ran)",
        "retention.copy_applied": "at {target}: retention applied {ago} ago",
        "frequency.continuous": "continuous copy to {target}",
        "frequency.ok": "copy to {target} ({schedule}): at most {gap} between runs "
                        "≤ {limit}",
        "frequency.over": "copy to {target} ({schedule}): up to {gap} between runs "
                          "> {limit}",
        "joined": "{parts}",
        "residency.ok": "every repository of its plans is inside mainland China",
        "residency.bad": "{problems}",
        "dr.none": "no [dr.{system}] table: no standby to switch to (docs/dr.md)",
        "dr.nothing": "no standby: nothing to drill or switch",
        "dr.configured": "[dr.{system}]: {kind} standby at site {site} ({feed}), drills "
                         "{drill}",
        "dr.configured_nodrill": "[dr.{system}]: {kind} standby at site {site} ({feed}), "
                                 "no drill schedule",
        "dr.recent": "{what} #{id} succeeded {when} (within {window})",
        "dr.never": "no drill or switch recorded for {system} in the last {window}: run "
                    "medark dr drill {system}",
        "dr.stale": "no drill or switch recorded for {system} in the last {window} (the "
                    "last, {what} #{id}, succeeded {when}): run medark dr drill {system}",
        "dr.failed_drill": "drill #{id} failed {when}, after the last success: {error}; "
                           "once fixed, run medark dr drill {system}",
        "switch.ok": "{what} #{id} {when}: switch time {value} ≤ {limit}",
        "switch.over": "{what} #{id} {when}: switch time {value} > {limit}",
        "switch.value": "{what} #{id} {when}: switch time {value}",
        "switch.unmeasured": "{what} #{id} {when} recorded no switch time: run medark dr "
                             "drill {system}",
        "switch.never": "no switch time measured for {system} in the last {window}: run "
                        "medark dr drill {system}",
        "switch.stale": "no switch time measured for {system} in the last {window} (the "
                        "last, {what} #{id}, {when}): run medark dr drill {system}",
        "switch.general": "a general system (criticality = \"general\"): the switch time "
                          "is judged for the main systems",
    },
    "zh": {
        "within.none": "{what}：无记录",
        "within.value": "{what} {value}",
        "within.over": "{what} {value} > {limit}",
        "within.ok": "{what} {value} ≤ {limit}",
        "not_built.dr": "应用级容灾（备用系统）尚未提供",
        "not_built.hot": "热冗余（温备）尚未提供",
        "not_built.devices": "网络设备配置备份尚未提供",
        "not_covered": "未覆盖",
        "no_restore_test": "未安排恢复演练，RTO 从未实测",
        "no_offsite": "未复制到其他站点",
        "no_offsite_copy": "无异地副本",
        "no_offsite_test": "未安排从异地副本的恢复演练（offsite_restore_test）",
        "plans": "备份计划 {plans}",
        "no_plan": "没有备份计划保护该系统",
        "copy_every": "每 {gap}复制一次",
        "continuous_copy": "持续复制",
        "realtime": "持续复制（copy --follow）",
        "no_realtime": "未持续复制到其他站点",
        "no_realtime_copy": "无持续复制",
        "no_records": "不含病历数据",
        "retention.short": "保留期 {reach} < {minimum}",
        "retention.reach": "保留期 {reach}",
        "retention.unapplied": "保留策略尚未执行（从未运行 forget）",
        "retention.applied": "保留策略 {ago}前执行；按策略保留每年的病历恢复点",
        "retention.copy.short": "{target}：保留期 {reach} < {minimum}",
        "retention.copy.reach": "{target}：保留期 {reach}",
        "retention.copy_unapplied": "{target}：保留策略尚未执行（从未运行 forget:{target}）",
        "retention.copy_applied": "{target}：保留策略 {ago}前执行",
        "frequency.continuous": "持续复制到 {target}",
        "frequency.ok": "复制到 {target}（{schedule}）两次之间最长 {gap} ≤ {limit}",
        "frequency.over": "复制到 {target}（{schedule}）两次之间最长 {gap} > {limit}",
        "joined": "{parts}",
        "residency.ok": "其备份计划的所有存储库均位于中国大陆境内",
        "residency.bad": "{problems}",
        "dr.none": "未配置 [dr.{system}]：没有可切换的备用系统（docs/dr.md）",
        "dr.nothing": "无备用系统，无从演练或切换",
        "dr.configured": "[dr.{system}]：{kind} 备用库位于站点 {site}（{feed}），演练计划 {drill}",
        "dr.configured_nodrill": "[dr.{system}]：{kind} 备用库位于站点 {site}（{feed}），"
                                 "未安排定期演练",
        "dr.recent": "{what} #{id} 于 {when} 成功（近 {window}内）",
        "dr.never": "近 {window}内 {system} 没有演练或切换记录：请运行 medark dr drill {system}",
        "dr.stale": "近 {window}内 {system} 没有演练或切换记录（最近一次 {what} #{id} 于 {when} "
                    "成功）：请运行 medark dr drill {system}",
        "dr.failed_drill": "演练 #{id} 于 {when} 失败（在最近一次成功之后）：{error}；修复后请运行 "
                           "medark dr drill {system}",
        "switch.ok": "{what} #{id}（{when}）切换时间 {value} ≤ {limit}",
        "switch.over": "{what} #{id}（{when}）切换时间 {value} > {limit}",
        "switch.value": "{what} #{id}（{when}）切换时间 {value}",
        "switch.unmeasured": "{what} #{id}（{when}）未记录切换时间：请运行 medark dr drill "
                             "{system}",
        "switch.never": "近 {window}内 {system} 没有实测的切换时间：请运行 medark dr drill "
                        "{system}",
        "switch.stale": "近 {window}内 {system} 没有实测的切换时间（最近一次 {what} #{id}，"
                        "{when}）：请运行 medark dr drill {system}",
        "switch.general": "一般系统（criticality = \"general\"）：切换时间只评价主要业务系统",
    },
}
"""Evidence templates by key; the values are durations (timedelta; None: forever),
`Phrase`s, strings, or residency problems."""

for _language, _words in DBAUDIT_EVIDENCE.items():
    EVIDENCE[_language].update(_words)  # Sichuan 1.5.2 (policy/compliance_dbaudit.py)
for _language, _words in NETCONFIG_EVIDENCE.items():
    EVIDENCE[_language].update(_words)  # Sichuan 1.4.1 (policy/compliance_netconfig.py)

PHRASES: dict[str, dict[str, str]] = {
    "en": {"schedule_rpo": "schedule allows RPO", "achieved_rpo": "achieved RPO",
           "planned_rto": "planned RTO", "test_rto": "restore test RTO",
           "copy_rpo": "copy schedule allows RPO", "offsite_age": "offsite point age",
           "offsite_test_rto": "offsite restore test RTO",
           "local_point": "newest local point",
           "dr.drill": "drill", "dr.switchover": "switch-over", "dr.failover": "failover",
           "dr.failback": "failback", "feed.stream": "streaming",
           "feed.repository": "replaying from a repository"},
    "zh": {"schedule_rpo": "备份计划允许的 RPO", "achieved_rpo": "实际 RPO",
           "planned_rto": "计划 RTO", "test_rto": "恢复演练 RTO",
           "copy_rpo": "复制计划允许的 RPO", "offsite_age": "异地最新恢复点距今",
           "offsite_test_rto": "异地恢复演练 RTO", "local_point": "本地最新恢复点距今",
           "dr.drill": "演练", "dr.switchover": "计划切换", "dr.failover": "故障切换",
           "dr.failback": "回切", "feed.stream": "流复制",
           "feed.repository": "从存储库回放"},
}

TITLES_ZH: dict[str, str] = {
    "local.rto": "本地备份 RTO ≤ {limit}",
    "local.rpo": "本地备份 RPO ≤ {limit}",
    "offsite.rto": "异地备份 RTO ≤ {limit}",
    "offsite.rpo": "异地备份 RPO ≤ {limit}",
    "dr.rto": "本地应用级容灾 RTO ≤ {limit}",
    "dr.rpo": "本地应用级容灾 RPO ≤ {limit}",
    "djbh.1.local": "提供重要数据的本地数据备份与恢复功能",
    "djbh.2.offsite": "提供异地数据备份功能，利用通信网络将重要数据定时批量传送至备用场地",
    "djbh.3.realtime": "提供异地实时备份功能，利用通信网络将重要数据实时备份至备份场地",
    "djbh.3.hot": "提供重要数据处理系统的热冗余，保证系统的高可用性",
    "djbh.4.switch": "建立异地灾难备份中心，提供业务应用的实时切换",
    "records.retention": "病历数据保存期限：门（急）诊不少于 15 年，住院不少于 30 年",
    "residency": "医疗数据存储于中国大陆境内",
    "sichuan.1.4.2": "主要信息系统容灾切换时间 ≤ {limit}",
    "sichuan.1.4.3": "异地备份间隔不超过 {limit}",
    "sichuan.1.4.1": "网络设备配置至少保留 3 个版本",
    "sichuan.1.5.2": DBAUDIT_TITLE_ZH,
}
"""Chinese titles of the built-in requirements by id; a hospital tier's own rows
(`三甲.local.rto`) by the part after the tier. The English titles are the requirements'
own (policy/compliance_profiles.py)."""

_ZH_UNITS = {"y": "年", "d": "天", "h": "小时", "min": "分钟", "s": "秒"}
_REGIONS_ZH = {"Hong Kong": "香港", "Macao": "澳门", "Taiwan": "台湾"}


def title(requirement: Requirement, language: str) -> str:
    """The requirement's title in `language` (a custom one as the configuration says)."""
    if language == "en" or requirement.custom:
        return requirement.title
    _tier, _, row = requirement.id.partition(".")
    template = TITLES_ZH.get(requirement.id) or TITLES_ZH.get(row)
    if template is None:
        return requirement.title
    return template.format(limit=span(requirement.limit, "zh"))


def evidence(key: str, values: Mapping[str, object], language: str) -> str:
    """One evidence template filled in `language`."""
    return EVIDENCE[language][key].format(
        **{name: _value(value, language) for name, value in values.items()})


def span(value: timedelta | None, language: str) -> str:
    """A duration as the configuration spells it ('1h30min'), or in Chinese ('1 小时 30
    分钟'); None is forever."""
    if value is None:
        return "forever" if language == "en" else "永久"
    millis = round(value.total_seconds() * 1000)
    if value > timedelta(0) and millis < 1000:  # an RTO under a second is not "0s"
        return f"{max(1, millis)}ms" if language == "en" else f"{max(1, millis)} 毫秒"
    if timedelta(0) < value < timedelta(seconds=10) and value.total_seconds() % 1:
        tenths = f"{value.total_seconds():.1f}"
        return f"{tenths}s" if language == "en" else f"{tenths} 秒"
    value = timedelta(seconds=round(value.total_seconds()))
    if language == "en":
        return format_config_duration(value)
    seconds, parts = int(value.total_seconds()), []
    for unit in ("y", "d", "h", "min", "s"):
        count, seconds = divmod(seconds, int(UNITS[unit].total_seconds()))
        if count:
            parts.append(f"{count} {_ZH_UNITS[unit]}")
    return " ".join(parts) or "0 秒"


def residency_text(found: Residency, language: str) -> str:
    """Why a location is, or is not, inside mainland China."""
    if language == "en":
        return found.reason
    place = found.location
    if place is None:
        return f"未记录位置（在 `medark init --location` 时设置；{RULE}）"
    region = region_name(place)
    if region is not None:
        where = _REGIONS_ZH.get(region, region)
        return f"{place.code}（{where}）位于中国大陆境外：不合规（{RULE}）"
    if found.verdict == NON_COMPLIANT:
        return f"{place.code} 位于中国大陆境外：不合规（{RULE}）"
    if found.verdict == UNKNOWN and place.subdivision not in CN_SUBDIVISIONS:
        return f"{place.code} 不是 ISO 3166-2:CN 行政区划代码：数据存储位置未知（{RULE}）"
    return f"{place.code} 位于中国大陆境内（{RULE}）"


def _value(value: object, language: str) -> str:
    if isinstance(value, Parts):
        return LABELS[language]["parts"].join(evidence(key, values, language)
                                            for key, values in value.items)
    if value is None or isinstance(value, timedelta):
        return span(value, language)
    if isinstance(value, Phrase):
        return PHRASES[language][value.key]
    if isinstance(value, list):  # residency problems: (repository, verdict)
        sep = "; " if language == "en" else "；"
        return sep.join(f"{target}: {residency_text(found, language)}"
                        for target, found in value)
    return str(value)


LABELS: dict[str, dict[str, str]] = {
    "en": {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "not covered": "NOT COVERED",
           "n/a": "N/A", "must": "must", "rec": "rec.", "design": "design: ",
           "measured": "measured: ", "sep": "; ", "parts": ", "},
    "zh": {"pass": "通过", "warn": "警告", "fail": "不通过", "not covered": "未覆盖",
           "n/a": "不适用", "must": "必须", "rec": "推荐", "design": "设计：",
           "measured": "实测：", "sep": "；", "parts": "，"},
}
"""The words around a verdict where it is printed as text (`medark compliance`); `parts`
joins the findings inside one evidence (`Parts`), `sep` the design and measured ones."""
