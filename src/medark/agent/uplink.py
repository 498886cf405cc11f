"""The agent's link to the management server, beside the local schedule (the daemon):

- **Heartbeat** every `interval` seconds: version, the plans of the local configuration,
  the length of the offline queue; the answer lists jobs to cancel.
- **Offline queue.** After each heartbeat the local catalog's finished jobs not yet
  reported are uploaded (`POST /api/agent/results`), keyed by their local id, and the
  mark in the state directory moves on only after the server took them; the server
  records each once, so a report resent after a lost answer is harmless.
- **Jobs.** A second thread long-polls `GET /api/agent/jobs`, runs what it is given
  (agent/work.py: only known kinds of local plans), sends progress and log events while
  it runs (a DR action's steps each as it ends), and uploads the result. A cancel (the
  answer to a progress report, or the heartbeat's list) stops the job's child processes
  with SIGTERM.
- **Windows.** The recoverable windows of the plans with a streamed database source
  (agent/windows.py), computed on a thread of their own every minute and after each job
  of such a plan, go with a heartbeat only when they changed.
- **Refusal.** A refused credential (revoked, unknown) stops the agent: `refused` holds
  the error, and `on_refused` stops the local schedule with it (exit 32).

When the server cannot be reached, nothing here blocks the local schedule: the threads
retry every interval and the results wait in the local catalog.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medark import __version__
from medark.agent import remote_jobs, work
from medark.agent.client import Client, Unreachable
from medark.agent.state import AgentState, Mark, load_mark, save_mark
from medark.agent.windows import WindowWatch
from medark.catalog.job_outbox import jobs_after
from medark.catalog.models import CANCELLED, FAILED, QUEUED, RUNNING
from medark.catalog.store import Catalog, JobRecord
from medark.config.plans import MedarkConfig
from medark.errors import AgentRefused, MedarkError
from medark.scheduler.children import Children
from medark.scheduler.runner import Launcher
from medark.util import clock

Event = Callable[[str, dict[str, object]], None]
BATCH = 100
"""Results per upload request."""


@dataclass(frozen=True)
class UplinkOptions:
    interval: float = 10.0
    """Seconds between heartbeats (and between retries when the server is away)."""
    wait: int = 25
    """Seconds one long poll for a job may wait at the server."""
    config_file: str | None = None
    """The configuration file, for the children of a DR action (`medark dr --config`)."""


class Uplink:
    def __init__(self, state: AgentState, directory: Path, config: MedarkConfig,
                 catalog: Catalog, client: Client, on_event: Event,
                 on_refused: Callable[[], None],
                 options: UplinkOptions = UplinkOptions()) -> None:
        self.state = state
        self.directory = directory
        self.config = config
        self.catalog = catalog
        self.client = client
        self.options = options
        self.stopping = threading.Event()
        self.refused: AgentRefused | None = None
        self._on_event = on_event
        self._on_refused = on_refused
        self._job_lock = threading.Lock()
        """Held while a server job runs: its local records are not offline results."""
        self._reachable: bool | None = None
        self._threads: list[threading.Thread] = []
        self._current: _Running | None = None
        self.windows = WindowWatch(config, on_event)

    def start(self) -> None:
        self.windows.start()
        for name, target in (("uplink-heartbeat", self._beat_loop),
                             ("uplink-jobs", self._poll_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, grace: float) -> None:
        """Stop; a job the server gave gets `grace` seconds to finish and report."""
        self.stopping.set()
        self.windows.stop()
        deadline = clock.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - clock.monotonic()))

    # ---- heartbeat and offline queue -------------------------------------------------

    def _beat_loop(self) -> None:
        beats = 0
        while not self.stopping.is_set():
            try:
                body: dict[str, Any] = {
                    "version": __version__, "plans": sorted(self.config.plans),
                    "queue_length": self._pending(), "interval": self.options.interval,
                    "dr_systems": sorted(self.config.dr),
                    "restore_targets": sorted(self.config.agent.restore_targets)}
                if self.config.dr and beats % remote_jobs.DR_STATUS_EVERY == 0:
                    body["dr_status"] = remote_jobs.dr_status_report(
                        self.config, self.catalog, self.options.config_file)
                windows = self.windows.pending()
                if windows is not None:
                    body["windows"] = windows
                beats += 1
                reply = self.client.call("POST", "/agent/heartbeat", body)[1]
                self._reached(None)
                if windows is not None:
                    self.windows.taken(windows)
                current = self._current
                if current is not None and current.job_id in reply.get("cancel", []):
                    current.cancel()
                self._upload()
            except Unreachable as exc:
                self._reached(exc)
            except AgentRefused as exc:
                self._refuse(exc)
                return
            except MedarkError as exc:
                self._on_event("uplink_error", {"error": str(exc)})
            self.stopping.wait(self.options.interval)

    def _pending(self) -> int:
        mark = load_mark(self.directory)
        skip = set(mark.skip)
        return sum(1 for job in jobs_after(self.catalog, mark.last_id, mark.held, 1000)
                   if job.id not in skip and job.status not in (QUEUED, RUNNING))

    def _upload(self) -> None:
        if not self._job_lock.acquire(blocking=False):
            return  # a server job is running: its records are not known yet
        try:
            while not self.stopping.is_set():
                mark = load_mark(self.directory)
                jobs = jobs_after(self.catalog, mark.last_id, mark.held, BATCH)
                if not jobs:
                    return
                skip = set(mark.skip)
                done = [j for j in jobs if j.id not in skip
                        and j.status not in (QUEUED, RUNNING)]
                for job in done:
                    self.windows.poke(job.plan)
                if done:
                    reply = self.client.call("POST", "/agent/results",
                                             {"results": [_result(j) for j in done]})[1]
                    self._on_event("uploaded", {"results": len(done),
                                                "recorded": reply.get("recorded"),
                                                "duplicates": reply.get("duplicates")})
                last = max(mark.last_id, *(j.id for j in jobs))
                held = [j.id for j in jobs if j.id not in skip
                        and j.status in (QUEUED, RUNNING)]
                save_mark(self.directory, Mark(last, held, [i for i in skip if i > last]))
                if len(jobs) < BATCH:
                    return
        finally:
            self._job_lock.release()

    def _reached(self, failure: Unreachable | None) -> None:
        reachable = failure is None
        if reachable != self._reachable:
            self._reachable = reachable
            if failure is None:
                self._on_event("server_reachable", {"server": self.client.server})
            else:
                self._on_event("server_unreachable", {"error": str(failure)})

    def _refuse(self, exc: AgentRefused) -> None:
        if self.refused is None:
            self.refused = exc
            self._on_event("refused", {"error": str(exc)})
            self.stopping.set()
            self._on_refused()

    # ---- jobs the server gives -------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                status, body = self.client.call("GET", f"/agent/jobs?wait={self.options.wait}",
                                                timeout=self.options.wait + 30)
                if status == 200 and isinstance(body.get("job"), dict):
                    self._take(body["job"])
                continue
            except Unreachable:
                pass  # the heartbeat says so
            except AgentRefused as exc:
                self._refuse(exc)
                return
            except MedarkError as exc:
                self._on_event("uplink_error", {"error": str(exc)})
            self.stopping.wait(self.options.interval)

    def _take(self, job: dict[str, Any]) -> None:
        job_id, plan, kind = int(job["id"]), str(job["plan"]), str(job["kind"])
        given = job.get("details")
        details: dict[str, Any] = given if isinstance(given, dict) else {}
        with self._job_lock:
            self._on_event("job_started", {"job": job_id, "plan": plan, "kind": kind})
            refused = work.refusal(self.config, plan, kind, details)
            if refused is None:
                result = self._work(job_id, plan, kind, details)
            else:
                result = work.Result(FAILED, refused)
                self._send_event(job_id, "log", {"message": f"refused: {refused}"})
            if result.local_ids:
                mark = load_mark(self.directory)
                mark.skip = sorted(set(mark.skip) | set(result.local_ids))
                save_mark(self.directory, mark)
            self._report(job_id, result)
            self.windows.poke(plan)
            self._on_event("job_finished", {"job": job_id, "plan": plan, "kind": kind,
                                            "status": result.status, "error": result.error})

    def _work(self, job_id: int, plan: str, kind: str,
              details: dict[str, Any]) -> work.Result:
        """Run the job with progress every interval; a cancel (the answer to a progress
        report, or the heartbeat's list) stops its child processes with SIGTERM (a backup
        stops cleanly) and it ends cancelled."""
        running = self._current = _Running(job_id)
        self._send_event(job_id, "log", {"message": f"agent {self.state.name} on "
                                                    f"{socket.gethostname()}: {kind} of "
                                                    f"plan {plan} started"})

        def progress() -> None:
            if self._send_event(job_id, "progress",
                                {"message": f"{kind} of plan {plan} running"}):
                running.cancel()

        def step(done: dict[str, Any]) -> None:  # a DR step, as it ends
            self._send_event(job_id, "log", {"message": remote_jobs.step_line(done),
                                             "step": done})

        ticker = _Ticker(progress, self.options.interval)
        ticker.start()
        try:
            result = _run(self.config, self.catalog, plan, kind, running.children.launch,
                          details, self.options.config_file, step)
        finally:
            ticker.stop()
            self._current = None
        for part in result.summary.get("parts", []):
            self._send_event(job_id, "log", {"message": _line(part)})
        if running.cancelled.is_set():
            result.status, result.error = CANCELLED, "cancelled at the server's request"
        return result

    def _send_event(self, job_id: int, kind: str, data: dict[str, Any]) -> bool:
        """Whether the server asks to cancel; an unreachable server loses the event."""
        try:
            reply = self.client.call("POST", f"/agent/jobs/{job_id}/events",
                                     {"kind": kind, "data": data})[1]
            return bool(reply.get("cancel_requested"))
        except MedarkError:
            return False

    def _report(self, job_id: int, result: work.Result) -> None:
        """The result, retried while the server is away (until the agent stops)."""
        body = {"status": result.status, "error": result.error,
                "summary": result.summary, "snapshot_id": result.snapshot_id,
                "bytes_added": result.bytes_added}
        while True:
            try:
                self.client.call("POST", f"/agent/jobs/{job_id}/result", body)
                return
            except Unreachable:
                if self.stopping.wait(self.options.interval):
                    return
            except AgentRefused as exc:
                self._refuse(exc)
                return
            except MedarkError as exc:
                self._on_event("uplink_error", {"job": job_id, "error": str(exc)})
                return


class _Running:
    """The server job being run: its child processes, and whether it was cancelled."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.children = Children()
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        if not self.cancelled.is_set():
            self.cancelled.set()
            self.children.close()  # no further step starts
            self.children.terminate()


def _run(config: MedarkConfig, catalog: Catalog, plan: str, kind: str,
         launcher: Launcher, details: dict[str, Any] | None = None,
         config_file: str | None = None,
         on_step: remote_jobs.OnStep | None = None) -> work.Result:
    try:
        return work.run(config, catalog, plan, kind, launcher, details, config_file,
                        on_step)
    except MedarkError as exc:
        return work.Result(FAILED, str(exc).splitlines()[0] if str(exc) else exc.code)


class _Ticker:
    """Calls `beat` every `every` seconds on a thread of its own until stopped: a long
    job keeps telling the server it is alive."""

    def __init__(self, beat: Callable[[], object], every: float) -> None:
        self._beat = beat
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="uplink-progress",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        self._beat()
        while not self._stop.wait(self._every):
            self._beat()


def _line(part: dict[str, Any]) -> str:
    text = f"{part.get('kind')}: {part.get('status')}"
    if part.get("snapshot_ids"):
        text += f", snapshot {','.join(map(str, part['snapshot_ids']))}"
    if part.get("bytes_added"):
        text += f", {part['bytes_added']} bytes added"
    if part.get("error"):
        text += f": {part['error']}"
    return text[:500]


def _result(job: JobRecord) -> dict[str, Any]:
    def fmt(value: Any) -> str | None:
        return clock.format_time(value) if value is not None else None

    return {"local_id": job.id, "plan": job.plan[:200], "kind": job.kind[:120],
            "status": job.status, "scheduled_for": fmt(job.scheduled_for),
            "started_at": fmt(job.started_at), "finished_at": fmt(job.finished_at),
            "error": job.error[-4000:] if job.error else None,
            "snapshot_id": job.snapshot_id, "bytes_added": job.bytes_added,
            "details": job.details}
