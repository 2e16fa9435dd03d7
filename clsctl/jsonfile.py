"""Reading the JSON files users hand to clsctl (predictions, annotations) with clear errors."""

from __future__ import annotations

import json
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
        ClsctlError: (or ``error``) The file is missing or is not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path} is not a JSON file ({exc})") from None
