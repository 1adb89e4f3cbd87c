"""The progress bar of ``pressrun render``: rows done, failed, rate and ETA, on stderr."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from pressrun.runner import RunReport


class RunProgress:
    def __init__(self, total: int) -> None:
        self._progress = Progress(
            TextColumn("rendering"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]:.1f} rows/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
            # Redrawn 4 times a second, not rich's 10: the redraw holds the GIL the event loop needs.
            refresh_per_second=4,
        )
        self._task: TaskID = self._progress.add_task("render", total=total, failed=0, rate=0.0)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, report: RunReport) -> None:
        self._progress.update(
            self._task,
            completed=report.completed + report.failed,
            failed=report.failed,
            rate=report.rate_per_s,
        )
