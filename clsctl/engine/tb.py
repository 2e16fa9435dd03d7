"""TensorBoard event files next to ``metrics.jsonl``: the same records, as scalars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Record keys that say where a record belongs rather than what was measured.
_POSITION_KEYS = {"mode", "epoch", "iter", "step", "time_stamp"}


class TensorBoardLog:
    """Writes every numeric value of a metrics record as the scalar ``<mode>/<key>`` at the record's step.

    Args:
        log_dir: Folder of the event files (created).
    """

    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when asked for

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir))

    def write(self, record: dict[str, Any]) -> None:
        """Add the record's numbers as scalars."""
        mode, step = record.get("mode", "train"), int(record.get("step", 0))
        for key, value in record.items():
            if key not in _POSITION_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{mode}/{key}", value, step)
        if mode != "train":  # validation is rare and worth seeing at once; training records flush in batches
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
