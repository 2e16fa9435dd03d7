"""Checkpoints: atomic writes, safe loads (``weights_only=True``), and what they must contain."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from clsctl.errors import CheckpointWriteError
from clsctl.readers import CHECKPOINT_FORMAT  # the format tag lives with the checkpoint reader

VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically and durably (:func:`clsctl.atomic.write_atomic`: a temporary file
    in the same folder, fsync, rename, fsync of the folder).

    A crash (or ``kill -9``) during the write leaves the previous file intact, and so does a failed write.

    Raises:
        CheckpointWriteError: The write failed (disk full, no permission, I/O error); the previous file, if
            any, is untouched and no temporary file is left behind.
    """
    from clsctl.atomic import write_atomic

    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "version": VERSION, **payload}
    try:
        write_atomic(path, lambda handle: torch.save(payload, handle), durable=True)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {reason} ({_free_space(path.parent)}); "
                                   f"the previous checkpoint is intact") from exc
    return path


def link_checkpoint(source: str | Path, path: str | Path) -> Path:
    """Make ``path`` hold what ``source`` holds, atomically: a hard link (a copy where the file system has none)
    under a temporary name, then a rename. Replacing ``source`` later does not change ``path``."""
    source, path = Path(source), Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            import shutil

            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _free_space(folder: Path) -> str:
    """``"1.2 GiB free on /data/runs"``, or that it is unknown."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return "free space unknown"
    return f"{free / 2**30:.1f} GiB free on {probe}"
