"""The rich progress bar used by long-running work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text


class _NoProgress:
    """Stands in for ``Progress`` when bars are off."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


class RateColumn(ProgressColumn):
    """Throughput of a task added with a ``unit`` field, e.g. ``412.3 img/s`` (blank for other tasks)."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        if unit is None:
            return Text("")
        speed = task.finished_speed or task.speed
        return Text("-" if speed is None else f"{speed:.1f} {unit}/s", style="progress.data.speed")


@contextlib.contextmanager
def make_progress(enabled: bool = True, console: Console | None = None) -> Iterator[Any]:
    """A progress display with count, throughput, elapsed time and ETA, or a silent stand-in.

    A task added with ``unit="img"`` (any unit) also shows its rate, e.g. ``412.3 img/s``.
    """
    if not enabled:
        yield _NoProgress()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
    with progress:
        yield progress
