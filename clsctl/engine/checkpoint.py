"""Checkpoints: atomic writes, safe loads (``weights_only=True``), and what they must contain."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from clsctl.errors import CheckpointWriteError
# The format tag and required keys live with the checkpoint reader, which every layer uses; named here too.
from clsctl.readers import CHECKPOINT_FORMAT as FORMAT, CHECKPOINT_REQUIRED_KEYS as REQUIRED_KEYS  # noqa: F401
from clsctl.readers import read_checkpoint

VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, fsync, rename, then fsync
    the folder (so that the rename itself survives a power loss).

    A crash (or ``kill -9``) during the write leaves the previous file intact, and so does a failed write.

    Raises:
        CheckpointWriteError: The write failed (disk full, no permission, I/O error); the previous file, if
            any, is untouched and no temporary file is left behind.
    """
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_folder(path.parent)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {reason} ({_free_space(path.parent)}); "
                                   f"the previous checkpoint is intact") from exc
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
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


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; skipped where a folder cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a clsctl checkpoint with ``weights_only=True`` and check it is one.

    Raises:
        CheckpointError: Missing, a folder, empty, not a PyTorch file, an unsafe pickle, a plain state dict,
            or not a (complete) clsctl checkpoint; see :func:`clsctl.readers.read_checkpoint`.
    """
    return read_checkpoint(path)
