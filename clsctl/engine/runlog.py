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


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file (blank or truncated last lines are skipped); see
    :func:`clsctl.readers.read_metrics_log`."""
    from clsctl.readers import read_metrics_log

    return read_metrics_log(path)
