"""The terminal half of progress: the log lines (replicator.observe.progress_log) plus, on a terminal, a
rich progress bar. The library reports through callbacks; this is the one place that draws.
"""

from __future__ import annotations

from typing import Any, TextIO

from replicator.core.output import human_rate, human_size
from replicator.core.progress import SnapshotResult
from replicator.observe.progress_log import LogProgress


class TerminalProgress(LogProgress):
    """LogProgress (the lines) plus, on a terminal, a rich bar: bytes copied of bytes to copy, rate, ETA.

    Rates are in binary units, as `--max-bandwidth 4MiB` caps them (rich's own speed column is decimal).
    """

    def __init__(self, stream: TextIO, *, bar: bool) -> None:
        super().__init__()
        self._bar: Any = None
        self._task: Any = None
        if bar:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                ProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress
            from rich.text import Text

            class RateColumn(ProgressColumn):
                def render(self, task: Any) -> Text:
                    speed = task.finished_speed or task.speed
                    return Text("?" if speed is None else human_rate(speed), style="progress.data.speed")

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                RateColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(file=stream),
                transient=True,
            )

    def on_snapshot_start(self, result: SnapshotResult, index: int, total: int) -> None:
        super().on_snapshot_start(result, index, total)
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(result.snapshot_name, total=None, note="listing")

    def on_planned(self, copy_bytes: int, clear_bytes: int) -> None:
        super().on_planned(copy_bytes, clear_bytes)
        if self._task is not None:
            self._bar.update(self._task, total=self.total)

    def on_total(self, copy_bytes: int) -> None:
        super().on_total(copy_bytes)
        if self._task is not None:
            self._bar.update(self._task, total=self.total)

    def on_listing_done(self) -> None:
        super().on_listing_done()
        if self._task is not None and self.current is not None:
            rest = max(0, self.current.size_bytes - self.planned - self.cleared)
            note = f"{human_size(rest)} {'empty' if self.current.mode == 'full' else 'unchanged'}, skipped"
            self._bar.update(self._task, total=self.planned, note=note)

    def on_skipped(self, nbytes: int) -> None:
        super().on_skipped(nbytes)
        if self._task is not None:
            self._bar.update(self._task, note=f"resumed: {human_size(self.skipped)} already copied")

    def on_written(self, nbytes: int) -> None:
        super().on_written(nbytes)
        if self._task is not None:
            self._bar.advance(self._task, nbytes)

    def on_retry(self, what: str, attempt: int, delay: float, error: str) -> None:
        super().on_retry(what, attempt, delay, error)
        if self._task is not None:
            self._bar.update(self._task, note=f"retrying ({error[:60]})")

    def on_snapshot_done(self, result: SnapshotResult) -> None:
        self.close()  # the summary line goes below the bar, not into it
        super().on_snapshot_done(result)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            if self._task is not None:
                self._bar.remove_task(self._task)
                self._task = None
