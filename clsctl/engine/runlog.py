"""The run's JSON-lines metrics log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl``; each record gets a wall-clock ``time_stamp``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` and flush, so a crash loses nothing written before it."""
        line = json.dumps({**record, "time_stamp": round(time.time(), 3)})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def read_metrics(path: str | Path, *, superseded: bool = False) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (blank or truncated last lines are skipped; see
    :func:`clsctl.readers.read_metrics_log`).

    A resumed run appends a ``resume`` record, then redoes the steps after the position it resumed from:
    the records the first attempt wrote for those steps are superseded and left out, so each step appears
    once (``superseded=True`` keeps every record as written).
    """
    from clsctl.readers import read_metrics_log

    records = read_metrics_log(path)
    return records if superseded else drop_superseded(records)


def drop_superseded(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` without those that a later ``resume`` record redoes: train records after its optimizer
    step, validation records after its epoch."""
    kept: list[dict[str, Any]] = []
    for record in records:
        if record.get("mode") == "resume":
            step, epoch = record.get("step", 0), record.get("epoch", 0)
            kept = [r for r in kept if not _redone(r, step, epoch)]
        kept.append(record)
    return kept


def _redone(record: dict[str, Any], step: int, epoch: int) -> bool:
    mode = record.get("mode")
    if mode == "train":
        return record.get("step", 0) > step
    if mode in ("val", "val_ema"):
        return record.get("epoch", 0) > epoch
    return False
