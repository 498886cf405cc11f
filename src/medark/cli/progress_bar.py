"""The terminal progress bar (rich). Imported only when stderr is a terminal: rich costs
about 7 MB and 60 ms at start-up, which cron jobs and pipes should not pay."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Bar:
    def __init__(self, label: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]} files"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        self._task: TaskID = self._progress.add_task(label, total=None, files=0)

    def set_total(self, nbytes: int | None) -> None:
        self._progress.update(self._task, total=nbytes)

    def advance(self, nbytes: int, files: int) -> None:
        self._progress.update(self._task, advance=nbytes, files=files)

    def print(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        self._progress.stop()
