"""The terminal progress bar (rich). Imported only when stderr is a terminal: rich costs
about 7 MB and 60 ms at start-up, which cron jobs and pipes should not pay.

The engines only add to integer counters (CliProgress.advance, once per chunk); the bar
reads them when it redraws, at most ten times a second, so a large file moves the bar
while it is read and counting costs the backup nothing it could notice."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from math import ceil

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from medark.util.sizes import binary_unit, format_bytes

Counts = Callable[[], tuple[int, int, int | None, int | None]]
"""files done, bytes done, total files, total bytes (None: unknown yet)."""

REFRESH_PER_SECOND = 10
SPEED_WINDOW = 15.0
"""Seconds of throughput the speed and the ETA are estimated from."""
SPEED_AFTER = 0.3
"""No speed (nor ETA) from less than this many seconds of samples: it would be noise."""
LABEL_WIDTH = 16


class _Pulling(Progress):
    """A rich Progress that copies the counters into its task each time it draws."""

    def __init__(self, *columns: ProgressColumn, counts: Counts, console: Console) -> None:
        self._counts = counts
        self._samples: deque[tuple[float, int]] = deque()
        super().__init__(*columns, console=console, transient=True, expand=True,
                         refresh_per_second=REFRESH_PER_SECOND,
                         speed_estimate_period=SPEED_WINDOW)

    def get_renderables(self) -> Iterable[RenderableType]:
        for task_id in list(self._tasks):  # one task: the command's
            self._pull(task_id)
        yield from super().get_renderables()

    def _pull(self, task_id: TaskID) -> None:
        files, nbytes, total_files, total_bytes = self._counts()
        by_files = total_bytes is None and total_files is not None
        done, total = (files, total_files) if by_files else (nbytes, total_bytes)
        speed = self._speed(done)
        remaining = None
        if total is not None and speed:
            remaining = max(0, total - done) / speed
        self.update(task_id, total=total, completed=done, unit="files" if by_files else "bytes",
                    files=files, nbytes=nbytes, speed=speed, remaining=remaining)

    def _speed(self, done: int) -> float | None:
        """Amount a second over the last SPEED_WINDOW seconds of redraws. rich's own
        estimate ignores the redraws where nothing moved, so a stalled backup would keep
        showing its old speed; this one falls to zero (and the ETA to unknown)."""
        now = self.get_time()
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and samples[1][0] <= now - SPEED_WINDOW:
            samples.popleft()
        start, start_done = samples[0]
        if now - start < SPEED_AFTER:
            return None
        return max(0.0, (done - start_done) / (now - start))


class _Amount(ProgressColumn):
    """Bytes done of the total ("120.5/200.0 MiB"), or items done of the total when only
    a count is known (check's phases count packs, snapshots, index files)."""

    def render(self, task: Task) -> Text:
        if task.fields["unit"] == "files":
            # items of the phase: packs, snapshots, indexes (not always files)
            return Text(f"{int(task.completed)}/{int(task.total or 0)}",
                        style="progress.download")
        if task.total is None:
            return Text(format_bytes(task.completed), style="progress.download")
        divisor, unit = binary_unit(task.total)
        return Text(f"{task.completed / divisor:.1f}/{task.total / divisor:.1f} {unit}",
                    style="progress.download")


class _Rate(ProgressColumn):
    """Bytes a second over the last SPEED_WINDOW seconds (files a second in files mode)."""

    def render(self, task: Task) -> Text:
        speed = task.fields["speed"]
        if speed is None:
            return Text("", style="progress.data.speed")
        if task.fields["unit"] == "files":
            return Text(f"{speed:.0f}/s", style="progress.data.speed")
        return Text(f"{format_bytes(speed, 1)}/s", style="progress.data.speed")


class _Files(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.fields["unit"] == "files":
            return Text(format_bytes(task.fields["nbytes"]) if task.fields["nbytes"] else "")
        files = task.fields["files"]
        if not files:  # a stream (pg, mysql, stdin) or the first file still being read
            return Text("")
        return Text(f"{files} file" if files == 1 else f"{files} files")


class _Time(ProgressColumn):
    """The ETA when a total is known (remaining amount over the recent throughput), else
    the time elapsed."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(_clock(task.elapsed or 0.0), style="progress.elapsed")
        remaining = task.fields["remaining"]
        # Rounded up: "0:00:00" only once nothing remains.
        shown = "-:--:--" if remaining is None else _clock(ceil(remaining))
        return Text(f"ETA {shown}", style="progress.remaining")


def _clock(seconds: float) -> str:
    """H:MM:SS, hours past 24 included ("31:05:00", not "1 day, 7:05:00")."""
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}"


class Bar:
    def __init__(self, label: str, counts: Counts) -> None:
        self._progress = _Pulling(
            TextColumn("[bold]{task.description}", table_column=Column(
                no_wrap=True, overflow="ellipsis", max_width=LABEL_WIDTH)),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=8)),
            _Amount(table_column=Column(no_wrap=True)),
            _Rate(table_column=Column(no_wrap=True)),
            _Files(table_column=Column(no_wrap=True)),
            _Time(table_column=Column(no_wrap=True)),
            counts=counts, console=Console(stderr=True),
        )
        self._task: TaskID = self._progress.add_task(label, total=None, unit="bytes",
                                                     files=0, nbytes=0, speed=None,
                                                     remaining=None)
        self._progress.start()

    def print(self, text: str) -> None:
        # soft_wrap: one line, however long (the terminal wraps it, rich adds no newline)
        self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self._progress.stop()
