"""``analyze-logs``: curves and training-time statistics from ``metrics.jsonl`` files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clsctl.analysis._draw import pyplot, save_figure
from clsctl.engine.runlog import read_metrics
from clsctl.errors import ClsctlError


def run_label(path: str | Path) -> str:
    """A short name for a log: its run folder's name (every log is called ``metrics.jsonl``)."""
    path = Path(path)
    if path.is_dir():
        return path.name
    return path.parent.name if path.name == "metrics.jsonl" and path.parent.name else path.stem


def key_series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float], str]:
    """Values of ``key`` against the optimizer step, from train records first, else from val records.

    Returns:
        Steps, values, and the mode (``train`` or ``val``) they came from; empty lists when no record has it.
    """
    for mode in ("train", "val"):
        rows = [r for r in records if r.get("mode") == mode and isinstance(r.get(key), (int, float))]
        if rows:
            return [int(r["step"]) for r in rows], [float(r[key]) for r in rows], mode
    return [], [], ""


def numeric_keys(records: Sequence[dict[str, Any]]) -> list[str]:
    """Keys that can be plotted."""
    skip = {"epoch", "iter", "step", "time_stamp"}
    keys = {k for r in records for k, v in r.items() if isinstance(v, (int, float)) and k not in skip}
    return sorted(keys)


def parse_window_size(text: str) -> tuple[float, float]:
    """``12x7`` (or ``12*7``) inches -> ``(12.0, 7.0)``."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        width, height = (float(p) for p in parts)
    except ValueError:
        raise ClsctlError(f"window size must look like 12x7 (width x height in inches), got '{text}'") from None
    if width <= 0 or height <= 0:
        raise ClsctlError(f"window size must be positive, got '{text}'")
    return width, height


def plot_curves(logs: Sequence[str | Path], out: str | Path, *, keys: Sequence[str] = ("loss",),
                legend: Sequence[str] | None = None, title: str | None = None, style: str | None = None,
                window_size: tuple[float, float] = (12, 7)) -> Path:
    """Plot ``keys`` of every log against the optimizer step: one panel per key, one line per log.

    Args:
        logs: ``metrics.jsonl`` files (or run folders).
        out: PNG path.
        keys: Record keys, e.g. ``loss``, ``lr``, ``accuracy/top1`` (a key missing from train records is read from
            the val records).
        legend: One label per (log, key) line, in log-major order; default ``<run>: <key>``.
        title: Figure title.
        style: A matplotlib style (``ggplot``, ``seaborn-v0_8-whitegrid``, ...).
        window_size: Figure width and height in inches.
    """
    plt = pyplot()
    all_records = [read_metrics(log) for log in logs]
    lines = [(log, records, key) for log, records in zip(logs, all_records) for key in keys]
    if legend is not None and len(legend) != len(lines):
        raise ClsctlError(f"--legend needs {len(lines)} labels (one per log and key), got {len(legend)}")
    if style is not None and style != "default" and style not in plt.style.available:
        raise ClsctlError(f"unknown style '{style}'; choose from: default, {', '.join(sorted(plt.style.available))}")
    with plt.style.context(style or "default"):
        # One panel per key, sharing the iteration axis: losses and accuracies live on different scales.
        fig, axes = plt.subplots(len(keys), 1, figsize=window_size, dpi=100, sharex=True, squeeze=False)
        for index, (log, records, key) in enumerate(lines):
            ax = axes[list(keys).index(key), 0]
            steps, values, mode = key_series(records, key)
            if not steps:
                raise ClsctlError(f"{log}: no record has '{key}'",
                                  details=[f"keys in this log: {', '.join(numeric_keys(records))}"])
            label = legend[index] if legend is not None else f"{run_label(log)}: {key}"
            marker = "o" if mode == "val" else None  # val points are sparse: show each one
            ax.plot(steps, values, label=label, marker=marker, linewidth=1.2)
            ax.set_ylabel(key)
            ax.legend()
        axes[-1, 0].set_xlabel("iteration")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        out = save_figure(fig, out)
    return out


@dataclass
class TrainTime:
    """Training speed of one log.

    ``epoch_iter_time[e]`` is the average seconds per iteration of epoch ``epochs[e]``; ``epoch_time`` the
    training seconds of that epoch (iterations x their time, validation excluded).
    """

    log: str
    epochs: list[int]
    epoch_iter_time: list[float]
    epoch_time: list[float]
    excluded_records: int
    slowest_epoch: int = field(init=False)
    fastest_epoch: int = field(init=False)
    std_over_epochs: float = field(init=False)
    average_iter_time: float = field(init=False)
    iterations: int = 0

    def __post_init__(self) -> None:
        times = np.asarray(self.epoch_iter_time)
        self.slowest_epoch = self.epochs[int(times.argmax())]
        self.fastest_epoch = self.epochs[int(times.argmin())]
        self.std_over_epochs = float(times.std())


def train_time(log: str | Path, *, include_outliers: bool = False) -> TrainTime:
    """Per-epoch iteration time from the train records' ``time`` (seconds per iteration since the last record).

    The first record of every epoch includes data-loader start-up and is left out unless ``include_outliers``
    (as MMPretrain's ``cal_train_time`` does); an epoch with a single record keeps it.

    Args:
        log: ``metrics.jsonl`` (or its run folder).
        include_outliers: Keep each epoch's first record.
    """
    records = [r for r in read_metrics(log) if r.get("mode") == "train" and "time" in r]
    if not records:
        raise ClsctlError(f"{log}: no train records with 'time'")
    by_epoch: dict[int, list[tuple[int, float]]] = {}
    last_iter: dict[int, int] = {}
    for record in records:
        epoch = int(record["epoch"])
        done = int(record.get("iter", last_iter.get(epoch, 0) + 1))
        count = max(done - last_iter.get(epoch, 0), 1)  # iterations this record's mean time covers
        last_iter[epoch] = done
        by_epoch.setdefault(epoch, []).append((count, float(record["time"])))
    epochs, iter_times, epoch_times = [], [], []
    excluded, iterations, counted_time = 0, 0, 0.0
    for epoch in sorted(by_epoch):
        rows = by_epoch[epoch]
        epoch_times.append(sum(n * t for n, t in rows))
        if not include_outliers and len(rows) > 1:
            rows, excluded = rows[1:], excluded + 1
        counted = sum(n for n, _ in rows)
        seconds = sum(n * t for n, t in rows)
        iterations, counted_time = iterations + counted, counted_time + seconds
        epochs.append(epoch)
        iter_times.append(seconds / counted)
    stats = TrainTime(str(log), epochs, iter_times, epoch_times, excluded, iterations=iterations)
    stats.average_iter_time = counted_time / iterations
    return stats
