"""Alert conditions, raised once and resolved when they clear.

- `job_failed:PLAN:KIND` — a backup or copy job failed; resolved by the next success.
- `suspicious:PLAN` — a backup was flagged as possible ransomware (exit 4); resolved by
  the next backup that is not flagged.
- `restore_test_failed:PLAN[:TARGET]` — a restore test (from the copy TARGET) did not
  verify; resolved by the next one that does.
- `rpo_breach:PLAN` — the plan's newest successful backup is older than its RPO target
  (a plan that never succeeded counts from the daemon's start); resolved when a backup
  brings the age back under the target.
Each condition is one open row in the catalog's alert table: it is notified when it
opens and when it resolves, never again while it stays open, even across restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.durations import format_config_duration
from medark.config.plans import MedarkConfig
from medark.scheduler.notify import Notice, deliver
from medark.scheduler.runner import Outcome
from medark.util import clock

SUSPICIOUS_EXIT = 4

TEXTS = {
    "zh": {
        "job_failed": ("【Medark】{plan} {kind} 任务失败", "错误：{error}"),
        "job_failed/resolved": ("【Medark】{plan} {kind} 已恢复", "最近一次任务已成功。"),
        "suspicious": ("【Medark】{plan} 疑似勒索软件",
                       "快照 {snapshot} 的变化异常（大量文件被加密或改名），请隔离主机，"
                       "用 medark snapshots --clean 找到可恢复的快照。"),
        "suspicious/resolved": ("【Medark】{plan} 备份已恢复正常", "最近一次备份未被标记。"),
        "rpo_breach": ("【Medark】{plan} 超出 RPO",
                       "最新可恢复点已过去 {age}，目标 RPO 为 {target}。"),
        "restore_test_failed": ("【Medark】{plan} 恢复演练失败",
                                "自动恢复验证未通过：{error}"),
        "restore_test_failed/resolved": ("【Medark】{plan} 恢复演练已通过",
                                         "最近一次自动恢复验证成功。"),
        "rpo_breach/resolved": ("【Medark】{plan} RPO 已恢复",
                                "最新可恢复点已过去 {age}，目标 RPO 为 {target}。"),
    },
    "en": {
        "job_failed": ("[Medark] {plan}: {kind} failed", "Error: {error}"),
        "job_failed/resolved": ("[Medark] {plan}: {kind} recovered",
                                "The latest job succeeded."),
        "suspicious": ("[Medark] {plan}: possible ransomware",
                       "Snapshot {snapshot} changed abnormally (many files encrypted or "
                       "renamed): isolate the host; `medark snapshots --clean` lists the "
                       "snapshots to restore from."),
        "suspicious/resolved": ("[Medark] {plan}: backups look normal again",
                                "The latest backup was not flagged."),
        "rpo_breach": ("[Medark] {plan}: RPO breached",
                       "The newest recoverable point is {age} old; the target is {target}."),
        "restore_test_failed": ("[Medark] {plan}: restore test failed",
                                "The automatic restore verification failed: {error}"),
        "restore_test_failed/resolved": ("[Medark] {plan}: restore test passed",
                                         "The latest automatic restore verification "
                                         "succeeded."),
        "rpo_breach/resolved": ("[Medark] {plan}: RPO met again",
                                "The newest recoverable point is {age} old; the target is "
                                "{target}."),
    },
}

Event = Callable[[str, dict[str, object]], None]


class Alerter:
    def __init__(self, config: MedarkConfig, catalog: Catalog, on_event: Event) -> None:
        self.config = config
        self.catalog = catalog
        self._on_event = on_event
        self.started = clock.now()

    def job_finished(self, plan: str, kind: str, outcome: Outcome) -> None:
        if kind.startswith("restore_test"):
            source = kind.partition(":")[2]  # a test from a copy has a condition of its own
            key = f"restore_test_failed:{plan}" + (f":{source}" if source else "")
            if outcome.status == FAILED:
                self._raise(key, "restore_test_failed", plan, error=outcome.error or "")
            elif outcome.status == SUCCEEDED:
                self._resolve(key, "restore_test_failed", plan)
            return
        if outcome.status == FAILED:
            self._raise(f"job_failed:{plan}:{kind}", "job_failed", plan,
                        kind=kind, error=outcome.error or "")
        elif outcome.status == SUCCEEDED:
            self._resolve(f"job_failed:{plan}:{kind}", "job_failed", plan, kind=kind)
        if kind != "backup" or outcome.status not in (SUCCEEDED, FAILED):
            return
        flagged = [s for s in outcome.steps if s.get("exit_code") == SUSPICIOUS_EXIT]
        if flagged:
            self._raise(f"suspicious:{plan}", "suspicious", plan,
                        snapshot=str(flagged[0].get("snapshot_id", ""))[:8])
        elif outcome.status == SUCCEEDED:
            self._resolve(f"suspicious:{plan}", "suspicious", plan)

    def check_rpo(self, now: datetime | None = None) -> None:
        now = now or clock.now()
        for name, plan in sorted(self.config.plans.items()):
            done = self.catalog.latest(name, "backup", SUCCEEDED)
            point = done.started_at if done is not None and done.started_at else None
            age = now - (point or self.started)
            words = {"age": _span(age), "target": _span(plan.rpo)}
            if age > plan.rpo:
                self._raise(f"rpo_breach:{name}", "rpo_breach", name,
                            age_seconds=round(age.total_seconds()), **words)
            elif point is not None:
                self._resolve(f"rpo_breach:{name}", "rpo_breach", name, **words)

    def _raise(self, key: str, condition: str, plan: str, **words: object) -> None:
        title, text = self._texts(condition, plan, words)
        if self.catalog.raise_alert(key, condition, plan, title, dict(words)):
            self._send(Notice(key, condition, plan, "firing", title, text, dict(words)))

    def _resolve(self, key: str, condition: str, plan: str, **words: object) -> None:
        if self.catalog.resolve_alert(key) is not None:
            title, text = self._texts(f"{condition}/resolved", plan, words)
            self._send(Notice(key, condition, plan, "resolved", title, text, dict(words)))

    def _texts(self, condition: str, plan: str, words: dict[str, object]) -> tuple[str, str]:
        title, text = TEXTS[self.config.alerts.language][condition]
        values = {"plan": plan, "kind": "", "error": "", "snapshot": "", "age": "",
                  "target": "", **{k: str(v) for k, v in words.items()}}
        return title.format(**values), text.format(**values)

    def _send(self, notice: Notice) -> None:
        self._on_event(f"alert_{notice.state}", {"key": notice.key, "title": notice.title})
        for failure in deliver(self.config.alerts, notice):
            self._on_event("alert_undelivered", {"key": notice.key, "error": failure})


def _span(value: timedelta) -> str:
    return format_config_duration(timedelta(seconds=round(value.total_seconds())))
