"""Reading the JSON files users hand to clsctl (predictions, annotations): :func:`clsctl.readers.read_json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clsctl.errors import ClsctlError


def read_json_file(path: str | Path, *, what: str, error: type[ClsctlError] = ClsctlError) -> Any:
    """Parse a JSON file.

    Args:
        path: The file.
        what: What the file is, for the not-found message ("predictions file").
        error: The exception type to raise.

    Raises:
        ClsctlError: (or ``error``) The file is missing, a folder, empty, not UTF-8 or not JSON.
    """
    from clsctl.readers import read_json

    return read_json(path, what=what, error=error)
