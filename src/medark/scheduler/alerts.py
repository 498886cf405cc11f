"""Alert conditions, raised once and resolved when they clear.

- `job_failed:PLAN:KIND` — a backup or copy job failed; resolved by the next success.
- `suspicious:PLAN` — a backup was flagged as possible ransomware (exit 4); resolved by
  the next backup that is not flagged.
- `restore_test_failed:PLAN[:TARGET]` — a restore test (from the copy TARGET) did not
  verify; resolved by the next one that does.
- `rpo_breach:PLAN` — the plan's newest successful backup is older than its RPO target
  (a plan that never succeeded counts from the daemon's start); resolved when a backup
  brings the age back under the target.
- `dr_lag:SYSTEM` — the DR standby is further behind than `max_lag_bytes`/`max_lag`;
  `dr_standby:SYSTEM` — the standby cannot take over (unreachable, not streaming) or
  its replay is paused; `dr_sync:SYSTEM` — a `synchronous` system is not synchronous
  (degraded, blocked, unknown): each from the daemon's `dr supervise` pass
  (scheduler/dr_watch.py), resolved by the first pass that finds it cleared.
- `dr_drill_failed:SYSTEM` — a scheduled `dr drill` failed; resolved by the next that
  succeeds.
- `audit_anchor_failed:REPOSITORY` — the daemon's anchor of the audit trail
  (`[audit] anchor_repository`, scheduler/audit_anchoring.py) failed; resolved by the
  next that succeeds.
- `netconfig_unreachable:DEVICE` — `netconfig fetch` could not fetch a network device's
  configuration (unreachable, host key, authentication); resolved by the next fetch that
  succeeds. `netconfig_changed:DEVICE` — a new version was stored outside the device's
  change window; resolved by the next fetch without such a change (docs/netconfig.md).
- `dbaudit_failed:SOURCE` — a database audit collector's pass failed (its log missing or
  unreadable, too many records not of its format); resolved by the next pass that
  succeeds (service/dbaudit.py, docs/dbaudit.md).
The DR conditions carry the system's name where the others carry the plan's; the anchor
condition the repository's.
Each condition is one open row in the catalog's alert table: it is notified when it
opens and when it resolves, never again while it stays open, even across restarts.

Delivery runs on a thread of its own, so a dead mail server never holds up the daemon's
loop or a job: the notice is first recorded `pending` in the alert's row, then sent, each
failing channel retried with doubling pauses (notify.deliver), and the row says
`delivered` or `undelivered` (with the channels missed and why). An undelivered notice
is not lost: the daemon's periodic look (`tick`) sends it again to the channels it
missed every `alerts.redeliver` until it gets through, and a notice left pending by a
daemon that stopped mid-send is picked up by the next one. A condition that clears
before its firing notice got through is then notified as resolved only (its row keeps
both times).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import AlertRecord, Catalog
from medark.config.durations import format_config_duration
from medark.config.plans import MedarkConfig
from medark.scheduler.notify import DELIVERY_DEADLINE, Notice, channels, deliver
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
        "dr_lag": ("【Medark】{plan} 容灾备库延迟超限",
                   "{error}。此时故障切换会丢失数据，超限时 medark dr failover 需 --force。"),
        "dr_lag/resolved": ("【Medark】{plan} 容灾备库延迟已恢复", "备库延迟已回到限值以内。"),
        "dr_standby": ("【Medark】{plan} 容灾备库停止复制或回放",
                       "{error}。备库未跟上主库，请检查备库与复制链路。"),
        "dr_standby/resolved": ("【Medark】{plan} 容灾备库已恢复",
                                "备库正在接收并回放主库的日志。"),
        "dr_sync": ("【Medark】{plan} 同步复制未生效",
                    "{error}。medark dr status 显示同步复制的状态。"),
        "dr_sync/resolved": ("【Medark】{plan} 同步复制已恢复",
                             "主库的每次提交再次等待备库确认。"),
        "dr_drill_failed": ("【Medark】{plan} 容灾演练失败", "容灾演练未通过：{error}"),
        "dr_drill_failed/resolved": ("【Medark】{plan} 容灾演练已通过",
                                     "最近一次容灾演练成功（medark dr history 列出用时）。"),
        "audit_anchor_failed": ("【Medark】审计日志锚定到 {plan} 失败",
                                "{error}。上次锚定之后的审计记录只受哈希链与签名保护。"),
        "audit_anchor_failed/resolved": ("【Medark】审计日志锚定到 {plan} 已恢复",
                                         "最近一次锚定成功。"),
        "netconfig_unreachable": ("【Medark】网络设备 {plan} 配置获取失败",
                                  "{error}。未保存新的配置版本。"),
        "netconfig_unreachable/resolved": ("【Medark】网络设备 {plan} 配置获取已恢复",
                                           "最近一次获取成功。"),
        "netconfig_changed": ("【Medark】网络设备 {plan} 在变更窗口外修改了配置",
                              "新版本 {snapshot}：medark netconfig diff {plan} 显示改动。"),
        "netconfig_changed/resolved": ("【Medark】网络设备 {plan} 未再在窗口外变更",
                                       "最近一次获取未发现窗口外的变更。"),
        "dbaudit_failed": ("【Medark】{plan} 数据库审计日志采集失败",
                           "{error}。修复前，新的数据库操作暂不会进入审计记录。"),
        "dbaudit_failed/resolved": ("【Medark】{plan} 数据库审计日志采集已恢复",
                                    "最近一次采集成功。"),
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
        "dr_lag": ("[Medark] {plan}: DR standby lag over its limit",
                   "{error}. A failover now would lose data; `medark dr failover` needs "
                   "--force beyond the limit."),
        "dr_lag/resolved": ("[Medark] {plan}: DR standby lag within its limit",
                            "The standby is back within max_lag_bytes and max_lag."),
        "dr_standby": ("[Medark] {plan}: DR standby not replicating or replaying",
                       "{error}. The standby is not keeping up: check it and the "
                       "replication link."),
        "dr_standby/resolved": ("[Medark] {plan}: DR standby replicating again",
                                "The standby receives and replays the primary's log."),
        "dr_sync": ("[Medark] {plan}: synchronous replication not in force",
                    "{error}. `medark dr status` shows the synchronous state."),
        "dr_sync/resolved": ("[Medark] {plan}: synchronous replication restored",
                             "Every commit on the primary waits for the standby again."),
        "dr_drill_failed": ("[Medark] {plan}: DR drill failed",
                            "The DR drill did not pass: {error}"),
        "dr_drill_failed/resolved": ("[Medark] {plan}: DR drill passed",
                                     "The latest DR drill succeeded (`medark dr history` "
                                     "shows its time)."),
        "audit_anchor_failed": ("[Medark] {plan}: audit trail anchor failed",
                                "{error}. Audit records since the last anchor are "
                                "protected by the chain and signature only."),
        "audit_anchor_failed/resolved": ("[Medark] {plan}: audit trail anchored again",
                                         "The latest anchor succeeded."),
        "netconfig_unreachable": ("[Medark] network device {plan}: configuration not "
                                  "fetched", "{error}. No new version was stored."),
        "netconfig_unreachable/resolved": ("[Medark] network device {plan}: fetched again",
                                           "The latest fetch succeeded."),
        "netconfig_changed": ("[Medark] network device {plan}: changed outside its change "
                              "window", "New version {snapshot}: `medark netconfig diff "
                              "{plan}` shows the change."),
        "netconfig_changed/resolved": ("[Medark] network device {plan}: no change outside "
                                       "the window since", "The latest fetch found no change "
                                       "outside the change window."),
        "dbaudit_failed": ("[Medark] {plan}: database audit collection failing",
                           "{error}. Until it is fixed, the database's new actions do "
                           "not reach the audit trail."),
        "dbaudit_failed/resolved": ("[Medark] {plan}: database audit collection "
                                    "recovered", "The latest collection succeeded."),
    },
}

Event = Callable[[str, dict[str, object]], None]
Item = tuple[int, Notice, set[str] | None]
"""(alert row, notice, channels to send it to: None for all)."""
SWEEP_EVERY = 30.0
"""At most this many seconds between looks for notices to send again."""


class Alerter:
    def __init__(self, config: MedarkConfig, catalog: Catalog, on_event: Event) -> None:
        self.config = config
        self.catalog = catalog
        self._on_event = on_event
        self.started = clock.now()
        self._channels = [c.id for c in channels(config.alerts)]
        self._queue: queue.Queue[Item | None] = queue.Queue()
        self._inflight: Counter[int] = Counter()
        self._guard = threading.Lock()
        self._closing = threading.Event()
        self._worker: threading.Thread | None = None
        self._next_sweep = 0.0

    def tick(self, now: datetime | None = None) -> None:
        """The daemon's periodic look: every plan's RPO, then notices to send again."""
        self.check_rpo(now)
        if clock.monotonic() >= self._next_sweep:
            redeliver = self.config.alerts.redeliver.total_seconds()
            self._next_sweep = clock.monotonic() + min(redeliver, SWEEP_EVERY)
            self.redeliver(now)

    def redeliver(self, now: datetime | None = None) -> None:
        """Queue again the notices that did not get through (undelivered, tried
        `redeliver` ago or more) or were left pending by a daemon that stopped."""
        now = now or clock.now()
        redeliver = self.config.alerts.redeliver
        stale = max(redeliver, timedelta(seconds=2 * DELIVERY_DEADLINE))
        with self._guard:
            busy = {row for row, count in self._inflight.items() if count > 0}
        for record in self.catalog.claim_undelivered(now - redeliver, now - stale, busy):
            notice = _notice(record)
            if notice is None:
                continue
            missed = set(record.delivery.channels if record.delivery else [])
            only = missed & set(self._channels) or None  # channels renamed: all of them
            self._on_event("alert_retrying", {"key": record.key, "notice": notice.state,
                                              "channels": sorted(only or self._channels)})
            self._enqueue(record.id, notice, only)

    def close(self, timeout: float) -> None:
        """At shutdown: no more pauses between tries; what is queued gets one try each,
        within `timeout` seconds. A notice still unsent stays pending in the catalog for
        the next daemon."""
        self._closing.set()
        if self._worker is None:
            return
        self._queue.put(None)
        self._worker.join(timeout)

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

    def drill_finished(self, system: str, outcome: Outcome) -> None:
        """A scheduled drill: the failure is the finding (`dr_drill_failed:SYSTEM`)."""
        if outcome.status == FAILED:
            self.dr_condition("dr_drill_failed", system, outcome.error or "the drill failed")
        elif outcome.status == SUCCEEDED:
            self.dr_condition("dr_drill_failed", system, None)

    def anchor_finished(self, repository: str, outcome: Outcome) -> None:
        """The daemon's anchor of the audit trail in `repository`."""
        key = f"audit_anchor_failed:{repository}"
        if outcome.status == FAILED:
            self._raise(key, "audit_anchor_failed", repository,
                        error=outcome.error or "the anchor failed")
        elif outcome.status == SUCCEEDED:
            self._resolve(key, "audit_anchor_failed", repository)

    def dr_condition(self, condition: str, system: str, problem: str | None,
                     **words: object) -> None:
        """Raise `CONDITION:SYSTEM` with `problem` (one line) as its error; resolve it
        when `problem` is None."""
        key = f"{condition}:{system}"
        if problem is None:
            self._resolve(key, condition, system)
        else:
            self._raise(key, condition, system, error=problem, **words)

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
        notice = Notice(key, condition, plan, "firing", title, text, _plain(words))
        row = self.catalog.raise_alert(key, condition, plan, title, _plain(words),
                                       notice.stored(), self._channels)
        if row is not None:
            self._send(row, notice)

    def _resolve(self, key: str, condition: str, plan: str, **words: object) -> None:
        title, text = self._texts(f"{condition}/resolved", plan, words)
        notice = Notice(key, condition, plan, "resolved", title, text, _plain(words))
        record = self.catalog.resolve_alert(key, notice.stored(), self._channels)
        if record is not None:
            self._send(record.id, notice)

    def _texts(self, condition: str, plan: str, words: dict[str, object]) -> tuple[str, str]:
        title, text = TEXTS[self.config.alerts.language][condition]
        values = {"plan": plan, "kind": "", "error": "", "snapshot": "", "age": "",
                  "target": "", **{k: str(v) for k, v in words.items()}}
        return title.format(**values), text.format(**values)

    def _send(self, row: int, notice: Notice) -> None:
        self._on_event(f"alert_{notice.state}", {"key": notice.key, "title": notice.title})
        if self._channels:
            self._enqueue(row, notice, None)

    # ---- the delivery thread -----------------------------------------------------------

    def _enqueue(self, row: int, notice: Notice, only: set[str] | None) -> None:
        with self._guard:
            self._inflight[row] += 1
            if self._worker is None and not self._closing.is_set():
                self._worker = threading.Thread(target=self._deliveries, name="alerts",
                                                daemon=True)
                self._worker.start()
        self._queue.put((row, notice, only))

    def _deliveries(self) -> None:
        while (item := self._queue.get()) is not None:
            row, notice, only = item
            try:
                self._deliver(row, notice, only)
            except Exception as exc:  # the thread must outlive any one notice
                self._on_event("alert_undelivered", {"key": notice.key,
                                                     "error": f"{type(exc).__name__}: {exc}"})
            finally:
                with self._guard:
                    self._inflight[row] -= 1

    def _deliver(self, row: int, notice: Notice, only: set[str] | None) -> None:
        failed, tries = deliver(self.config.alerts, notice, only, self._closing.wait)
        self.catalog.record_delivery(row, notice.state, failed, tries)
        for channel, error in sorted(failed.items()):
            self._on_event("alert_undelivered", {"key": notice.key, "notice": notice.state,
                                                 "channel": channel, "tries": tries,
                                                 "error": error})
        if not failed and (tries > 1 or only is not None):
            self._on_event("alert_delivered", {"key": notice.key, "notice": notice.state,
                                               "tries": tries})


def _notice(record: AlertRecord) -> Notice | None:
    stored = record.notice or {}
    if not {"state", "title", "text"} <= stored.keys():
        return None
    return Notice(record.key, record.kind, record.plan, str(stored["state"]),
                  str(stored["title"]), str(stored["text"]), dict(stored.get("details") or {}))


def _plain(words: dict[str, object]) -> dict[str, object]:
    """The words as JSON keeps them."""
    return {k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
            for k, v in words.items()}


def _span(value: timedelta) -> str:
    return format_config_duration(timedelta(seconds=round(value.total_seconds())))
