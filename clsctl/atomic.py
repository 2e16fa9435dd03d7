"""Writing files atomically: every file clsctl writes for a user (checkpoints, exports, predictions, reports,
recipes) goes through :func:`write_atomic`, so a crash, a full disk or Ctrl-C never leaves half a file where a
whole one was, or was expected.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], *, durable: bool = False) -> Path:
    """Write ``path`` through ``write`` (given a binary file) into a temporary file in the same folder, then
    rename it over ``path``; parent folders are made as needed.

    Args:
        path: The destination.
        write: Writes the content to the open file it is given.
        durable: Also ``fsync`` the file and the folder, so the new content survives a power loss (what
            checkpoints need; a plot does not).

    Raises:
        OSError: The write or the rename failed; ``path`` is as it was and no temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = ""
        if durable:
            _fsync_folder(path.parent)
    finally:
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)
    return path


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda handle: handle.write(data), durable=durable)


def write_text_atomic(path: str | Path, text: str, *, durable: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


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
