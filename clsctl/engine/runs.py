"""Run folders that are never overwritten by accident, and which checkpoint a resume continues from.

* No folder named (no ``--work-dir``, no ``runtime.work_dir``): ``runs/<recipe name>``, then ``-2``, ``-3``...
  the first that holds no run. ``--resume`` then continues the newest of them.
* A named folder that holds a run: training stops before any work (exit 2) and says what is there, unless
  it resumes, or ``overwrite`` moves the old run to ``<folder>.old-<timestamp>`` first (nothing is deleted).
* ``--resume`` continues from whichever of ``last.pt`` and ``recovery.pt`` is further along.
"""

from __future__ import annotations

import datetime
import re
import time
from pathlib import Path
from typing import Any

import torch

from clsctl.errors import CheckpointError, ClsctlError

LAST, RECOVERY = "last.pt", "recovery.pt"


class RunFolderExistsError(ClsctlError):
    """The named run folder holds a run and neither resume nor overwrite was asked for."""


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds (part of) a run: a metrics log or a checkpoint."""
    return folder.is_dir() and ((folder / "metrics.jsonl").exists() or any(folder.glob("*.pt")))


def _read_position(path: Path) -> dict[str, Any] | None:
    """Epoch, position and best metric of a checkpoint, read without loading its tensors (memory-mapped)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not a candidate
        return None
    if not isinstance(data, dict) or "epoch" not in data:
        return None
    epochs = (data.get("recipe") or {}).get("runtime", {}).get("epochs")
    return {"epoch": int(data["epoch"]), "position": int(data.get("position", 0)),
            "best_metric": data.get("best_metric"), "epochs": epochs}


def newest_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a resume of ``run_dir`` continues from: of ``last.pt`` and ``recovery.pt``, the one
    further along (epochs done, then batches of the next; ``last.pt`` on a tie).

    Raises:
        CheckpointError: Neither exists.
    """
    candidates = []
    for order, name in enumerate((RECOVERY, LAST)):
        path = run_dir / name
        info = _read_position(path) if path.is_file() else None
        if info is not None:
            candidates.append(((info["epoch"], info["position"], order), path))
    if not candidates:
        raise CheckpointError(f"nothing to resume: {run_dir / LAST} does not exist")
    return max(candidates)[1]


def describe_run(folder: Path) -> str:
    """``"3 of 10 epochs done, best 0.8125, last written 2026-11-29 15:02"`` for a folder holding a run."""
    parts = []
    try:
        info = _read_position(newest_checkpoint(folder))
    except CheckpointError:
        info = None
    if info is not None:
        done = f"{info['epoch']} of {info['epochs']}" if info["epochs"] else str(info["epoch"])
        inside = f" and {info['position']} batches" if info["position"] else ""
        parts.append(f"{done} epochs{inside} done")
        if info["best_metric"] is not None:
            parts.append(f"best metric {info['best_metric']:.4g}")
    else:
        parts.append("no checkpoint yet")
    files = [p for p in folder.iterdir() if p.is_file()]
    if files:
        newest = max(p.stat().st_mtime for p in files)
        parts.append(f"last written {datetime.datetime.fromtimestamp(newest):%Y-%m-%d %H:%M}")
    return ", ".join(parts)


def auto_run_dirs(base: Path) -> list[Path]:
    """``base``, ``base-2``, ``base-3``... as far as they exist, in that order."""
    pattern = re.compile(re.escape(base.name) + r"-(\d+)$")
    numbered = sorted((int(m.group(1)), p) for p in base.parent.glob(f"{base.name}-*")
                      if (m := pattern.match(p.name)) and p.is_dir())
    return ([base] if base.exists() else []) + [p for _, p in numbered]


def free_auto_run_dir(base: Path) -> Path:
    """The first of ``base``, ``base-2``, ``base-3``... that holds no run."""
    if not holds_run(base):
        return base
    number = 2
    while holds_run(base.with_name(f"{base.name}-{number}")):
        number += 1
    return base.with_name(f"{base.name}-{number}")


def choose_run_dir(named: Path | None, default: Path, *, resume: bool, overwrite: bool) -> Path:
    """The folder this run writes to, after moving an old run aside when ``overwrite`` asks for it.

    Args:
        named: The folder the user named (``--work-dir`` or ``runtime.work_dir``), or None.
        default: ``runs/<recipe name>``, the base of automatic folders.
        resume: Continue a run (``--resume``): the named folder, or the newest automatic one.
        overwrite: Move a run the named folder holds to ``<folder>.old-<timestamp>`` and start afresh.

    Raises:
        RunFolderExistsError: The named folder holds a run, without resume or overwrite.
    """
    if named is None:
        if resume:
            runs = [p for p in auto_run_dirs(default) if holds_run(p)]
            return runs[-1] if runs else default
        return free_auto_run_dir(default)
    if resume or not holds_run(named):
        return named
    if overwrite:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = named.with_name(f"{named.name}.old-{stamp}")
        number = 2
        while aside.exists():
            aside = named.with_name(f"{named.name}.old-{stamp}-{number}")
            number += 1
        named.rename(aside)
        return named
    raise RunFolderExistsError(
        f"{named} already holds a run ({describe_run(named)}); nothing was changed. To go on: --resume "
        f"continues it, --work-dir DIR starts a new run elsewhere, --overwrite moves it to "
        f"{named.name}.old-<timestamp> and starts afresh")
